"""Imported only when a config names it by ``module:Class`` and imports are allowed.

Tests check ``sys.modules`` for this module to prove a refused config never imported it.
"""

from __future__ import annotations

import torch

from logitkit import Processor, ProcessorConfig, StepContext


class CanaryConfig(ProcessorConfig):
    offset: float = 0.0


class Canary(Processor):
    """Adds a constant; harmless, but reachable only through an import path."""

    name = "canary"
    Config = CanaryConfig

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores + self.config.offset


def not_a_processor() -> None:
    """A callable that is not a Processor class."""
