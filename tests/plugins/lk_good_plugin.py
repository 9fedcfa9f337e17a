"""A well-behaved third-party plugin: one processor between the logits and temperature stages."""

from __future__ import annotations

import torch

from logitkit import Processor, ProcessorConfig, StepContext, hookimpl


class ShiftConfig(ProcessorConfig):
    shift: float = 0.0


class Shift(Processor):
    """Add a constant to every logit (harmless; used to test loading)."""

    name = "shift"
    stage = 250
    Config = ShiftConfig

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores + self.config.shift


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    register(Shift)
