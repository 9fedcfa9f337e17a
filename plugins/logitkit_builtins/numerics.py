"""Numerical hygiene: replace nan/inf scores, and turn scores back into log-probabilities."""

from __future__ import annotations

from collections.abc import Callable

import torch

from logitkit import Processor, Stage, StepContext


class RemoveInvalidValues(Processor):
    """Replace nan by 0, +inf by the dtype's largest finite value and -inf by its lowest."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    name = "remove_invalid_values"
    stage = Stage.LOGITS
    priority = 120

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        info = torch.finfo(scores.dtype)
        return torch.nan_to_num(scores, nan=0.0, posinf=info.max, neginf=info.min)


class RenormalizeLogits(Processor):
    """Turn the final scores into log-probabilities (log-softmax), after every other processor."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    name = "renormalize_logits"
    stage = Stage.RENORMALIZE
    argmax_invariant = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return safe_log_softmax(scores)


def safe_log_softmax(scores: torch.Tensor) -> torch.Tensor:
    """log_softmax over the last dim that never makes NaN from NaN-free scores.

    Plain log_softmax turns a row holding +inf, or a row with nothing left, into NaN.
    Instead the +inf tokens share the mass equally, and an empty row stays empty (-inf).
    """
    posinf = torch.isposinf(scores)
    only_posinf = torch.zeros_like(scores).masked_fill(~posinf, float("-inf"))
    shaped = torch.where(posinf.any(dim=-1, keepdim=True), only_posinf, scores)
    empty = ~(shaped > float("-inf")).any(dim=-1, keepdim=True)
    return shaped.log_softmax(dim=-1).masked_fill(empty, float("-inf"))


def register_processors(register: Callable[..., None]) -> None:
    register(RemoveInvalidValues)
    register(RenormalizeLogits)
