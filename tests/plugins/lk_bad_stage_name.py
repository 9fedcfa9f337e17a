"""A plugin whose processor names a stage that does not exist."""

from __future__ import annotations

import torch

from logitkit import Processor, StepContext, hookimpl


class Sideways(Processor):
    name = "sideways"
    stage = "sideways"  # type: ignore[assignment]

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    register(Sideways)
