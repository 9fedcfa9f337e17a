"""Per-row random numbers keyed like logitkit's sampler, so a row's draw never depends on its batch."""

from __future__ import annotations

import torch

from logitkit import NewRows, RowState, StepContext
from logitkit.sampling import fill_seeds, row_keys, uniform_noise


def row_seeds(element: object, seed: int | None, ctx: StepContext) -> torch.Tensor:
    """``element``'s per-row seeds: its row state's, else (a call on its own) the context's, ``seed`` or fresh ones."""
    state = ctx.row_state(element)
    if state is not None:
        return state["seeds"]
    return fill_seeds(ctx.seeds, ctx.batch_size, seed)


def seed_state(rows: NewRows, seed: int | None) -> RowState:
    """Row state holding each new row's seed: the one it was given, else ``seed``, else a fresh one."""
    return {"seeds": fill_seeds(rows.seeds, rows.count, seed).to(rows.device)}


def row_uniform(seeds: torch.Tensor, steps: torch.Tensor | int, salt: int) -> torch.Tensor:
    """One uniform (0, 1) number per row for this step.

    ``salt`` is a negative pseudo token id: the sampler keys its noise on real token
    ids (>= 0), so a salted draw never reuses the numbers that pick the token.
    """
    ids = torch.full((seeds.shape[0], 1), salt, dtype=torch.int64)
    return uniform_noise(row_keys(seeds, steps), ids).squeeze(-1)
