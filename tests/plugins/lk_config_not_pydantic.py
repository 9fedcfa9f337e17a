"""A plugin whose processor's Config is a dataclass, not a pydantic model."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from logitkit import Processor, StepContext, hookimpl


@dataclass
class PlainConfig:
    strength: float = 1.0


class Plain(Processor):
    name = "plain_config"
    Config = PlainConfig  # type: ignore[assignment]

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    register(Plain)
