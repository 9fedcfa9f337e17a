"""A plugin whose Config is a plain pydantic BaseModel (ignores unknown fields, takes NaN)."""

from __future__ import annotations

import torch
from pydantic import BaseModel

from logitkit import Processor, StepContext, hookimpl


class LaxConfig(BaseModel):
    strength: float = 1.0


class Lax(Processor):
    name = "lax_config"
    Config = LaxConfig

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    register(Lax)
