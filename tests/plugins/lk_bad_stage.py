"""A plugin whose processor declares a stage outside 1..999."""

from __future__ import annotations

import torch

from logitkit import Processor, StepContext, hookimpl


class Nowhere(Processor):
    name = "nowhere"
    stage = 5000

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    register(Nowhere)
