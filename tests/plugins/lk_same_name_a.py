"""One of two distributions that both publish a plugin named 'twin' (this one registers twin_a)."""

from __future__ import annotations

import torch

from logitkit import Processor, StepContext, hookimpl


class TwinA(Processor):
    name = "twin_a"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    register(TwinA)
