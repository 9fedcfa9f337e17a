"""Plugin objects that break their contract at run time in ways that used to give raw errors."""

from __future__ import annotations

import torch

from logitkit import NewRows, Processor, RowState, Selector, StepContext, hookimpl
from logitkit.decoding import DecodingJob


class RaisesInInit(Processor):
    name = "raises_in_init"

    def __init__(self, config=None, tokens=None) -> None:  # type: ignore[no-untyped-def]
        raise KeyError("no such table")

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores


class RaisesInAccept(Processor):
    name = "raises_in_accept"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores

    def init_rows(self, rows: NewRows) -> RowState:
        return {"seen": torch.zeros(rows.count, dtype=torch.long)}

    def accept(self, state: RowState, tokens: torch.Tensor) -> None:
        raise IndexError("accept went wrong")


class WipesInput(Processor):
    name = "wipes_input"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        scores.fill_(float("-inf"))
        return scores


class WrongShapeQuietly(Processor):
    name = "wrong_shape_quietly"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores[:, :-1]


class MinusOne(Selector):
    name = "minus_one"

    def select(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return torch.full((scores.shape[0],), -1, dtype=torch.long)


def junk_search(job: DecodingJob) -> object:
    return {"sequences": "not a tensor"}


@hookimpl
def register_processors(register):  # type: ignore[no-untyped-def]
    for cls in (RaisesInInit, RaisesInAccept, WipesInput, WrongShapeQuietly):
        register(cls)


@hookimpl
def register_selectors(register):  # type: ignore[no-untyped-def]
    register(MinusOne)


@hookimpl
def register_search_strategies(register):  # type: ignore[no-untyped-def]
    register("junk", junk_search, "returns junk")
