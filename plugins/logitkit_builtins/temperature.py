"""Temperature: divide the logits by T before softmax."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field

from logitkit import Processor, ProcessorConfig, Stage, StepContext
from logitkit.fastpath import CandidateView


class TemperatureConfig(ProcessorConfig):
    temperature: float = Field(default=1.0, ge=0, description="T > 1 flattens, T < 1 sharpens; 0 means greedy.")


class Temperature(Processor):
    """Scale logits by 1/T; T = 0 keeps only the top token (greedy)."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    name = "temperature"
    stage = Stage.TEMPERATURE
    Config = TemperatureConfig
    argmax_invariant = True
    #: Dividing by T > 0 keeps the order, so it runs on the fused candidate view.
    fused = "scale"

    def fused_usable(self) -> bool:
        # Below 1 / fp16's max the dense path decides per dtype (see ``apply``).
        return self.config.temperature >= 1 / torch.finfo(torch.float16).max

    def apply_sorted(self, view: CandidateView, ctx: StepContext) -> CandidateView:
        return view.rescaled(view.values / self.config.temperature)

    def fused_divisor(self) -> float:
        # ``apply`` is ``scores / T`` wherever the fast path is usable: foldable into a threshold search.
        return self.config.temperature

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        t = self.config.temperature
        # So small that 1/T overflows the dtype (T = 1e-46 is 0 in float32, and 0/0 is NaN): the T -> 0 limit.
        if t < 1 / torch.finfo(scores.dtype).max:
            # transformers rejects T=0; the limit of softmax(z/T) as T->0 is the argmax.
            keep = torch.zeros_like(scores, dtype=torch.bool)
            keep.scatter_(-1, scores.argmax(dim=-1, keepdim=True), True)
            return scores.masked_fill(~keep, float("-inf"))
        return scores / t


def register_processors(register: Callable[..., None]) -> None:
    register(Temperature)
