"""vLLM's persistent batch, seen as logitkit batch states: one per distinct config.

vLLM numbers its rows by batch index and tells its processors, before each
step, which indices left, which joined (with a live reference to each
request's output token list) and which moved. ``ConfigRows`` keeps one
``BatchState`` per distinct config; a row's position in that state never
changes when vLLM moves it: a move only relabels which batch index the row
is at, so moves and swaps cost no tensor copies. Before each step every row's
new output tokens are fed to ``accept``, and ``apply`` runs each config once
on its own rows' logits. Rows without a logitkit config are not tracked at all.

Nothing here imports vLLM: the same class serves any engine that numbers rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from logitkit.state import NO_SEED, BatchState
from logitkit_vllm.requests import RequestPlan

NEG_INF = float("-inf")


@dataclass
class _Row:
    prompt: list[int]
    #: The engine's live list of this request's output tokens.
    output: list[int]
    #: How many of ``output`` the batch state has accepted.
    accepted: int
    seed: int


@dataclass
class _Group:
    """The rows of one config: row ``i`` of ``state`` is at batch index ``indices[i]``."""

    plan: RequestPlan
    state: BatchState
    indices: list[int] = field(default_factory=list)
    rows: list[_Row] = field(default_factory=list)


class ConfigRows:
    """Tracks an engine's rows by config and applies each config to its rows."""

    def __init__(self, device: torch.device | str = "cpu", tokenizer: Callable[[], Any] | None = None) -> None:
        self.device = torch.device(device)
        #: Loads the served model's tokenizer, for configs whose processors read one (the constraints).
        self._tokenizer = tokenizer
        self._groups: dict[str, _Group] = {}
        #: batch index -> the group holding that row.
        self._where: dict[int, _Group] = {}

    @property
    def tracked(self) -> int:
        """How many rows run a logitkit config."""
        return len(self._where)

    # -- batch events, in vLLM's order: removed, added, moved --------------------------

    def remove(self, index: int) -> None:
        group = self._where.get(index)
        if group is not None:
            self._drop(group, group.indices.index(index))

    def add(self, index: int, plan: RequestPlan | None, prompt: list[int] | None, output: list[int], seed: int | None) -> None:
        """A request joins at ``index`` (replacing whatever was there); ``output`` is its live token list."""
        self.remove(index)
        if plan is None:
            return
        group = self._groups.get(plan.key)
        if group is None:
            group = self._groups[plan.key] = _Group(plan, plan.pipeline.new_state(self.device))
        else:
            self._catch_up(group)  # the rows already there accept their tokens; the new row starts caught up
        row = _Row(list(prompt or ()), output, 0, NO_SEED if seed is None else int(seed))
        self._join(group, index, row)

    def move(self, source: int, target: int, *, swap: bool) -> None:
        """One-way: ``target`` takes ``source``'s row (``target``'s old row is gone); swap: they trade."""
        moving, displaced = self._where.pop(source, None), self._where.pop(target, None)
        moving_at = moving.indices.index(source) if moving is not None else -1
        if displaced is not None:
            displaced_at = displaced.indices.index(target)
            if swap:
                displaced.indices[displaced_at] = source
                self._where[source] = displaced
            else:
                self._drop(displaced, displaced_at)
                if displaced is moving and displaced_at < moving_at:
                    moving_at -= 1
        if moving is not None:
            moving.indices[moving_at] = target
            self._where[target] = moving

    # -- each step ---------------------------------------------------------------------

    def apply(self, logits: torch.Tensor, row_of: Mapping[int, int] | None = None) -> torch.Tensor:
        """Each config's processors on its rows of ``logits`` ([batch, vocab]), in place.

        ``row_of`` maps a tracked index to its row of ``logits`` when the two differ
        (Model Runner V2 tracks request slots and reorders rows each step).
        """
        if not self._groups:
            return logits
        for group in list(self._groups.values()):
            self._catch_up(group)
            at = group.indices if row_of is None else [row_of[i] for i in group.indices]
            index = torch.tensor(at, dtype=torch.int64, device=logits.device)
            histories = [row.prompt + row.output[: row.accepted] for row in group.rows]
            ids = _right_aligned(histories, self.device)
            scores = group.state.process(ids, logits.index_select(0, index), **self._context(group.plan))
            if group.plan.greedy:
                best = scores.argmax(dim=-1, keepdim=True)
                scores = torch.full_like(scores, NEG_INF).scatter_(-1, best, scores.gather(-1, best))
            logits.index_copy_(0, index, scores.to(logits.dtype))
        return logits

    def _context(self, plan: RequestPlan) -> dict[str, Any]:
        # Only configs that read a tokenizer pay for loading it (once, on their first step).
        if self._tokenizer is None or not any("tokenizer" in p.needs for p in plan.pipeline.processors):
            return {}
        return {"tokenizer": self._tokenizer()}

    def _catch_up(self, group: _Group) -> None:
        """Feed every row's new output tokens to ``accept``.

        Normally every row has the same number of new tokens (one per step).
        A row that differs (still in chunked prefill, or resumed) leaves and
        rejoins with its tokens replayed, which leaves the state accepting
        them would have.
        """
        pending = [len(row.output) - row.accepted for row in group.rows]
        usual = Counter(pending).most_common(1)[0][0]
        odd = [p for p in reversed(range(len(pending))) if pending[p] != usual]
        rejoining = [(group.indices[p], group.rows[p]) for p in odd]
        for position in odd:
            self._drop(group, position)
        for _ in range(usual):
            tokens = [row.output[row.accepted] for row in group.rows]
            group.state.accept(torch.tensor(tokens, dtype=torch.int64, device=self.device))
            for row in group.rows:
                row.accepted += 1
        for index, row in reversed(rejoining):
            self._join(group, index, row)

    def _join(self, group: _Group, index: int, row: _Row) -> None:
        done = len(row.output)
        group.state.add([row.prompt + row.output[:done]], steps=done, seeds=[row.seed])
        row.accepted = done
        group.indices.append(index)
        group.rows.append(row)
        self._where[index] = group
        self._groups.setdefault(group.plan.key, group)

    def _drop(self, group: _Group, position: int) -> None:
        index = group.indices[position]
        if self._where.get(index) is group:
            del self._where[index]
        group.state.remove([position])
        del group.indices[position], group.rows[position]
        if not group.indices:
            self._groups.pop(group.plan.key, None)


def _right_aligned(histories: list[list[int]], device: torch.device) -> torch.Tensor:
    """``[rows, longest]`` int64, each row's tokens at the right (the left is padding no row owns)."""
    longest = max(len(h) for h in histories)
    ids = torch.zeros((len(histories), longest), dtype=torch.int64)
    for i, history in enumerate(histories):
        if history:
            ids[i, longest - len(history) :] = torch.tensor(history, dtype=torch.int64)
    return ids.to(device)
