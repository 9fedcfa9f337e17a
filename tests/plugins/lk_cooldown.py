"""A stateful test plugin: the cooldown processor from docs/plugins/tutorial.md, and a history checker."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field

from logitkit import NewRows, Processor, ProcessorConfig, RowState, Stage, StepContext, hookimpl


class CooldownConfig(ProcessorConfig):
    steps: int = Field(default=3, ge=1, description="Steps a generated token stays banned.")


class Cooldown(Processor):
    """Ban every token generated in the last `steps` steps."""

    name = "cooldown"
    stage = Stage.LOGITS
    Config = CooldownConfig
    primary = "steps"
    mixed_rows = True  # apply reads only the row state, so rows at any step share one call

    def init_rows(self, rows: NewRows) -> RowState:
        # One row of recent tokens per joining row (-1: none yet); the host keeps the rows
        # aligned when they move, leave or fork.
        recent = torch.full((rows.count, self.config.steps), -1, dtype=torch.long, device=rows.device)
        return {"recent": recent}

    def accept(self, state: RowState, tokens: torch.Tensor) -> None:
        recent = state["recent"]
        state["recent"] = torch.cat([recent[:, 1:], tokens.to(recent.device).unsqueeze(-1)], dim=1)

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        state = ctx.row_state(self)
        if state is None:  # a call on its own: nothing was generated under a state
            return scores
        recent = state["recent"].to(scores.device)
        banned = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
        banned.scatter_(-1, recent.clamp(min=0), recent >= 0)
        return scores.masked_fill(banned, float("-inf"))


#: 64-bit multiplier of the running history hash.
HASH_MULTIPLIER = 1_000_003


def history_hash(tokens: torch.Tensor) -> torch.Tensor:
    """A running hash per row of ``tokens`` ([rows, length]), wrapping modulo 2**64."""
    value = torch.zeros(tokens.shape[0], dtype=torch.int64, device=tokens.device)
    for column in range(tokens.shape[-1]):
        value = value * HASH_MULTIPLIER + tokens[:, column] + 1
    return value


class HistoryHash(Processor):
    """Keeps a hash of each row's tokens in its row state, and records whether it matches the history.

    ``checks`` collects ``(state hash == hash recomputed from ctx.input_ids)`` per row and step,
    so a test can tell whether the host's state followed the rows (beams, reorders).
    """

    name = "history_hash"
    stage = Stage.LOGITS

    def __init__(self, config: object = None, tokens: object = None) -> None:
        super().__init__(None, None)
        self.checks: list[bool] = []

    def init_rows(self, rows: NewRows) -> RowState:
        return {"hash": history_hash(rows.input_ids)}

    def accept(self, state: RowState, tokens: torch.Tensor) -> None:
        state["hash"] = state["hash"] * HASH_MULTIPLIER + tokens.to(state["hash"].device) + 1

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        state = ctx.row_state(self)
        if state is not None:
            expected = history_hash(ctx.input_ids)
            self.checks.extend((state["hash"].to(expected.device) == expected).tolist())
        return scores


@hookimpl
def register_processors(register: Callable[..., None]) -> None:
    register(Cooldown)


class HistoryList(Processor):
    """Like ``HistoryHash``, with each row's tokens kept as a Python list (row state of objects).

    A row that forks must get its own copy (``clone_row``): a shared list would
    collect both beams' tokens, which the check catches.
    """

    name = "history_list"
    stage = Stage.LOGITS

    def __init__(self, config: object = None, tokens: object = None) -> None:
        super().__init__(None, None)
        self.checks: list[bool] = []

    def init_rows(self, rows: NewRows) -> RowState:
        return {"tokens": [list(map(int, row)) for row in rows.input_ids.tolist()]}

    def accept(self, state: RowState, tokens: torch.Tensor) -> None:
        for row, token in zip(state["tokens"], tokens.tolist(), strict=True):
            row.append(int(token))

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        state = ctx.row_state(self)
        if state is not None:
            width = ctx.input_ids.shape[-1]
            for row, held in enumerate(state["tokens"]):
                own = ctx.input_ids[row, width - len(held) :].tolist() if held else []
                self.checks.append(own == held and len(held) == int(ctx.context_lengths[row]))
        return scores
