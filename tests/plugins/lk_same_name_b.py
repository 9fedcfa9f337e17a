"""The other distribution publishing a plugin named 'twin' (this one registers twin_b)."""

from __future__ import annotations

import torch

from logitkit import Processor, StepContext, hookimpl


class TwinB(Processor):
    name = "twin_b"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    register(TwinB)
