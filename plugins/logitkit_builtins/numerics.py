"""Numerical hygiene: replace nan/inf scores, and turn scores back into log-probabilities."""

from __future__ import annotations

from collections.abc import Callable

import torch

from logitkit import Processor, Stage, StepContext


class RemoveInvalidValues(Processor):
    """Replace nan by 0, +inf by the dtype's largest finite value and -inf by its lowest."""

    name = "remove_invalid_values"
    stage = Stage.LOGITS
    priority = 120

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        info = torch.finfo(scores.dtype)
        return torch.nan_to_num(scores, nan=0.0, posinf=info.max, neginf=info.min)


class RenormalizeLogits(Processor):
    """Turn the final scores into log-probabilities (log-softmax), after every other processor."""

    name = "renormalize_logits"
    stage = Stage.RENORMALIZE
    argmax_invariant = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores.log_softmax(dim=-1)


def register_processors(register: Callable[..., None]) -> None:
    register(RemoveInvalidValues)
    register(RenormalizeLogits)
