"""A plugin whose ``primary`` names a field its Config does not have (a typo)."""

from __future__ import annotations

import torch

from logitkit import Processor, ProcessorConfig, StepContext, hookimpl


class BoostConfig(ProcessorConfig):
    strength: float = 1.0


class Boost(Processor):
    name = "boost"
    Config = BoostConfig
    primary = "strenght"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores * self.config.strength


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    register(Boost)
