"""A plugin that replaces the built-in temperature on purpose."""

from __future__ import annotations

import torch
from pydantic import Field

from logitkit import Processor, ProcessorConfig, Stage, StepContext, hookimpl


class LoudTemperatureConfig(ProcessorConfig):
    temperature: float = Field(default=1.0, gt=0)


class LoudTemperature(Processor):
    """Temperature that refuses T=0."""

    name = "temperature"
    stage = Stage.TEMPERATURE
    Config = LoudTemperatureConfig

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores / self.config.temperature


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    register(LoudTemperature, replace=True)
