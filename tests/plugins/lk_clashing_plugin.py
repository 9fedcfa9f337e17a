"""A plugin that registers a processor named like a built-in, without asking to replace it."""

from __future__ import annotations

import torch

from logitkit import Processor, ProcessorConfig, Stage, StepContext, hookimpl


class OtherTopKConfig(ProcessorConfig):
    top_k: int = 1


class OtherTopK(Processor):
    name = "top_k"
    stage = Stage.TRUNCATION
    Config = OtherTopKConfig

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    register(OtherTopK)
