"""Per-row random numbers keyed like logitkit's sampler, so a row's draw never depends on its batch."""

from __future__ import annotations

import torch

from logitkit import StepContext
from logitkit.sampling import draw_seeds, row_keys, uniform_noise


class RowSeeds:
    """The context's per-row seeds, else a fixed seed, else seeds drawn once per generation."""

    def __init__(self, seed: int | None) -> None:
        self.seed = seed
        self._drawn: torch.Tensor | None = None

    def reset(self) -> None:
        self._drawn = None

    def __call__(self, ctx: StepContext) -> torch.Tensor:
        if ctx.seeds is not None:
            return ctx.seeds.to(torch.int64)
        if self.seed is not None:
            return torch.full((ctx.batch_size,), self.seed, dtype=torch.int64)
        if self._drawn is None or self._drawn.shape[0] != ctx.batch_size:
            self._drawn = draw_seeds(ctx.batch_size)
        return self._drawn


def row_uniform(seeds: torch.Tensor, step: int, salt: int) -> torch.Tensor:
    """One uniform (0, 1) number per row for this step.

    ``salt`` is a negative pseudo token id: the sampler keys its noise on real token
    ids (>= 0), so a salted draw never reuses the numbers that pick the token.
    """
    ids = torch.full((seeds.shape[0], 1), salt, dtype=torch.int64)
    return uniform_noise(row_keys(seeds, step), ids).squeeze(-1)
