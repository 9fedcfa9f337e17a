"""A plugin that loads fine but whose processors break the apply contract at run time.

Each one breaks exactly one rule, so check mode must name it; the pipeline's
default path does not look (it stays fast).
"""

from __future__ import annotations

from typing import Any

import torch

from logitkit import Processor, Selector, StepContext, hookimpl


class WrongShape(Processor):
    """Drops the last vocabulary column."""

    name = "wrong_shape"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores[:, :-1]


class WrongDtype(Processor):
    """Returns float64 scores whatever came in."""

    name = "wrong_dtype"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores.to(torch.float64 if scores.dtype != torch.float64 else torch.float32)


class MakesNan(Processor):
    """Writes NaN into the first token's score."""

    name = "makes_nan"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        out = scores.clone()
        out[:, 0] = float("nan")
        return out


class MutatesScores(Processor):
    """Halves the scores in place (and returns them, which hides the damage)."""

    name = "mutates_scores"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        scores.mul_(0.5)
        return scores


class MutatesInputIds(Processor):
    """Overwrites the history it was given."""

    name = "mutates_input_ids"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        ctx.input_ids[:, -1] = 0
        return scores


class ReturnsList(Processor):
    """Returns a Python list instead of a tensor."""

    name = "returns_list"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> Any:
        return scores.tolist()


class RaisesInApply(Processor):
    """Fails at run time with an error that does not say which processor it came from."""

    name = "raises_in_apply"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        raise IndexError("index 7 is out of bounds")


class OutOfVocab(Selector):
    """Picks an id one past the vocabulary."""

    name = "out_of_vocab"

    def select(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return torch.full((scores.shape[0],), scores.shape[-1], dtype=torch.long)


class PicksRemoved(Selector):
    """Picks the lowest-scoring token, which is -inf whenever anything was removed."""

    name = "picks_removed"

    def select(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores.argmin(dim=-1)


BROKEN = (
    WrongShape,
    WrongDtype,
    MakesNan,
    MutatesScores,
    MutatesInputIds,
    ReturnsList,
    RaisesInApply,
)
BROKEN_SELECTORS = (OutOfVocab, PicksRemoved)


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    for cls in BROKEN:
        register(cls)


@hookimpl
def register_selectors(register):  # type: ignore[no-untyped-def]
    for cls in BROKEN_SELECTORS:
        register(cls)
