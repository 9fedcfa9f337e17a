"""The live state of one batch under a pipeline: the rows a host decodes, and each element's row state.

A ``Pipeline`` is an immutable recipe; a ``BatchState`` is what one
generation (or one engine's persistent batch) keeps: per row, the prompt
length, the step, the sample seed, and the ``RowState`` of every stateful
processor and selector. The host tells it what happens to the rows:

- ``add``: rows join (with their prompts); each element's ``init_rows`` runs;
- ``remove``, ``move``, ``swap``, ``reorder``: rows leave, move or fork
  (beam search reorders by beam index; continuous batching condenses and swaps);
- ``accept``: the tokens chosen this step; each element's ``accept`` runs.

Row state is a dict of tensors with the row as first dimension, so every
event is one indexing of those tensors: an element never handles events.
An element whose state cannot be indexed declares ``follows_rows = False``,
and any event that would move its rows raises ``RowStateError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from logitkit.contract_checks import ProcessorContractError, call_named
from logitkit.processor import NewRows, Processor, RowState, Selector, StepContext

if TYPE_CHECKING:
    from logitkit.pipeline import Pipeline

Element = Processor | Selector

#: Seed value meaning "no seed given for this row".
NO_SEED = -1


class RowStateError(RuntimeError):
    """A host asked for a row event that an element's state cannot follow, or the rows do not match."""


def _as_prompt_batch(
    prompts: torch.Tensor | Sequence[Sequence[int]], pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids right-aligned [rows, length], prompt lengths [rows])`` from a tensor or ragged lists."""
    if isinstance(prompts, torch.Tensor):
        if prompts.dim() != 2:
            raise ValueError(f"prompts must be [rows, length], got shape {tuple(prompts.shape)}")
        lengths = torch.full((prompts.shape[0],), prompts.shape[-1], dtype=torch.int64)
        return prompts, lengths.to(prompts.device)
    rows = [list(map(int, p)) for p in prompts]
    longest = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), longest), pad, dtype=torch.int64)
    for i, row in enumerate(rows):
        if row:
            ids[i, longest - len(row) :] = torch.tensor(row, dtype=torch.int64)
    return ids, torch.tensor([len(r) for r in rows], dtype=torch.int64)


def _kind(element: Element) -> str:
    return "selector" if isinstance(element, Selector) else "processor"


def _is_row_values(state: Any, rows: int) -> bool:
    """A dict of per-row values: tensors with ``rows`` first, or lists of ``rows`` objects."""

    def per_row(value: Any) -> bool:
        if isinstance(value, torch.Tensor):
            return value.dim() > 0 and value.shape[0] == rows
        return isinstance(value, list) and len(value) == rows

    return isinstance(state, dict) and all(per_row(v) for v in state.values())


def _index_state(element: Element, state: Any, index: torch.Tensor) -> Any:
    """``state``'s rows in ``index`` order; a list item taken twice (a fork) is cloned the second time."""
    rows = index.tolist()
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.index_select(0, index.to(value.device))
            continue
        taken: set[int] = set()
        items = []
        for row in rows:
            items.append(value[row] if row not in taken else element.clone_row(value[row]))
            taken.add(row)
        out[key] = items
    return out


def _splice(old: Any, new: Any, first: int, end: int) -> Any:
    if isinstance(old, list):
        return [*old[:first], *new, *old[end:]]
    new = new.to(old.device)
    keep = torch.arange(first, device=old.device)
    tail = torch.arange(end, max(end, old.shape[0]), device=old.device)
    return torch.cat([old.index_select(0, keep), new, old.index_select(0, tail)])


class BatchState:
    """One batch's live state under ``pipeline``; created by ``Pipeline.start`` or ``Pipeline.new_state``.

    Not thread-safe: one host drives it. The pipeline it points to is shared freely.
    """

    def __init__(self, pipeline: Pipeline, device: torch.device | str | None = None) -> None:
        self.pipeline = pipeline
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.prompt_lengths = torch.zeros(0, dtype=torch.int64, device=self.device)
        self.steps = torch.zeros(0, dtype=torch.int64, device=self.device)
        self.seeds = torch.zeros(0, dtype=torch.int64, device=self.device)
        #: id(element) -> its row state (None for stateless elements).
        self._states: dict[int, Any] = {}
        self._elements: list[Element] = list(pipeline.elements)
        #: Rows have taken a step; elements that cannot follow rows refuse joins from then on.
        self._started = False

    # -- what elements and hosts read --------------------------------------------------

    @property
    def rows(self) -> int:
        return int(self.steps.shape[0])

    def row_state(self, element: object) -> RowState | None:
        state: RowState | None = self._states.get(id(element))
        return state

    def complete_rows(self) -> torch.Tensor | None:
        """Bool ``[rows]``: rows some processor reports complete (``Processor.complete_rows``); None if none reports."""
        complete: torch.Tensor | None = None
        for element in self._elements:
            state = self._states.get(id(element))
            if state is None or not isinstance(element, Processor):
                continue
            rows = call_named("processor", element, None, element.complete_rows, state)
            if rows is not None:
                rows = torch.as_tensor(rows, dtype=torch.bool).reshape(-1)
                if rows.shape[0] != self.rows:
                    raise ProcessorContractError(
                        f"processor {element.name!r}: complete_rows returned {rows.shape[0]} rows for {self.rows}"
                    )
                complete = rows if complete is None else complete | rows.to(complete.device)
        return complete

    def seeds_or_none(self) -> torch.Tensor | None:
        """Per-row seeds for the step context; None when no row was given one."""
        return self.seeds if bool((self.seeds >= 0).any()) else None

    def context(self, input_ids: torch.Tensor, **fields: Any) -> StepContext:
        """The step context for ``input_ids`` ([rows, length]: each row's tokens right-aligned)."""
        if input_ids.dim() != 2 or input_ids.shape[0] != self.rows:
            raise RowStateError(
                f"input_ids has shape {tuple(input_ids.shape)} but the batch state holds {self.rows} rows"
            )
        values = self.pipeline.context_fields()
        values.update(fields)
        seeds = self.seeds_or_none()
        if seeds is not None:
            values.setdefault("seeds", seeds)
        return StepContext(
            input_ids=input_ids,
            prompt_lengths=self.prompt_lengths.to(input_ids.device),
            steps=self.steps.to(input_ids.device),
            state=self,
            **values,
        )

    # -- rows joining ------------------------------------------------------------------

    def add(
        self,
        prompts: torch.Tensor | Sequence[Sequence[int]],
        *,
        prompt_lengths: torch.Tensor | Sequence[int] | int | None = None,
        steps: torch.Tensor | Sequence[int] | int = 0,
        seeds: torch.Tensor | Sequence[int] | int | None = None,
        at: int | None = None,
    ) -> range:
        """Rows join with their prompts; returns their indices.

        ``prompts`` is a [rows, length] tensor (every row's prompt that long,
        padding included, unless ``prompt_lengths`` says otherwise) or ragged
        lists of ids. ``steps`` > 0 declares tokens already generated at the
        end of each prompt row (a prefix replay): they are fed to ``accept``
        one by one, so stateful elements end up as if they had chosen them.
        ``seeds`` gives each row a sample seed (-1: none). ``at`` writes the
        rows over existing ones from that index (a recycled slot) instead of
        appending.
        """
        pad = self.pipeline.tokens.pad if self.pipeline.tokens.pad is not None else 0
        ids, lengths = _as_prompt_batch(prompts, pad)
        count = int(ids.shape[0])
        if prompt_lengths is not None:
            lengths = torch.as_tensor(prompt_lengths, dtype=torch.int64).reshape(-1).expand(count)
        generated = torch.as_tensor(steps, dtype=torch.int64).reshape(-1).expand(count).clone()
        lengths = lengths - generated
        if bool((lengths < 0).any()):
            raise ValueError("steps cannot exceed a row's tokens")
        row_seeds = (
            torch.full((count,), NO_SEED, dtype=torch.int64)
            if seeds is None
            else torch.as_tensor(seeds, dtype=torch.int64).reshape(-1).expand(count).clone()
        )
        first = self.rows if at is None else at
        if not 0 <= first <= self.rows:
            raise RowStateError(f"rows can join at 0..{self.rows}, not at {first}")
        if self._started and first != self.rows:
            self._refuse_fixed("rows replacing others")
        replay = int(generated.max()) if count else 0
        # Elements start from the prompt part; a replay then feeds the generated part.
        start_ids = ids[:, : ids.shape[-1] - replay] if replay else ids
        new = NewRows(
            start_ids.to(self.device),
            lengths.to(self.device),
            row_seeds.to(self.device),
        )
        fresh = {id(e): call_named(_kind(e), e, None, e.init_rows, new) for e in self._elements}
        for element in self._elements:
            state = fresh[id(element)]
            if state is not None and element.follows_rows and not _is_row_values(state, count):
                raise RowStateError(
                    f"{element.name!r}: init_rows must return a dict of tensors or lists with "
                    f"{count} rows (or declare follows_rows = False)"
                )
        if replay:
            self._replay(ids, lengths, generated, row_seeds, fresh)
        self._write_rows(first, count, lengths, generated, row_seeds, fresh)
        return range(first, first + count)

    def _replay(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        generated: torch.Tensor,
        seeds: torch.Tensor,
        fresh: dict[int, Any],
    ) -> None:
        """Feed rows' already generated tokens to ``accept``, oldest first."""
        if len(set(generated.tolist())) != 1:
            raise ValueError("rows replayed in one add() must share their number of steps")
        replay = int(generated[0])
        width = ids.shape[-1]
        for offset in range(replay):
            tokens = ids[:, width - replay + offset].to(self.device)
            for element in self._elements:
                state = fresh[id(element)]
                if state is not None:
                    call_named(_kind(element), element, None, element.accept, state, tokens)

    def _write_rows(
        self,
        first: int,
        count: int,
        lengths: torch.Tensor,
        generated: torch.Tensor,
        seeds: torch.Tensor,
        fresh: dict[int, Any],
    ) -> None:
        end = first + count
        self.prompt_lengths = _splice(self.prompt_lengths, lengths, first, end)
        self.steps = _splice(self.steps, generated, first, end)
        self.seeds = _splice(self.seeds, seeds, first, end)
        for element in self._elements:
            key, new_state = id(element), fresh[id(element)]
            old_state = self._states.get(key)
            if new_state is None:
                self._states[key] = None
            elif old_state is None:
                if first > 0:
                    raise RowStateError(f"{element.name!r} returned state for new rows only")
                self._states[key] = new_state
            elif not element.follows_rows:
                self._refuse_fixed("rows joining a batch that has rows", element)
            else:
                if set(old_state) != set(new_state):
                    raise RowStateError(
                        f"{element.name!r}: init_rows returned keys {sorted(new_state)}, "
                        f"but the batch holds {sorted(old_state)}"
                    )
                self._states[key] = {k: _splice(v, new_state[k], first, end) for k, v in old_state.items()}

    # -- rows leaving, moving, forking -----------------------------------------------

    def reorder(self, index: torch.Tensor | Sequence[int]) -> None:
        """Row ``i`` becomes a copy of old row ``index[i]`` (beam reorders, forks, condensing)."""
        index = torch.as_tensor(index, dtype=torch.int64, device=self.device).reshape(-1)
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= self.rows):
            raise RowStateError(f"reorder index out of range for {self.rows} rows")
        if index.shape[0] == self.rows and torch.equal(
            index, torch.arange(self.rows, device=self.device)
        ):
            return
        self._refuse_fixed("rows moving, leaving or forking")
        self.prompt_lengths = self.prompt_lengths.index_select(0, index)
        self.steps = self.steps.index_select(0, index)
        self.seeds = self.seeds.index_select(0, index)
        for element in self._elements:
            state = self._states.get(id(element))
            if state is not None:
                self._states[id(element)] = _index_state(element, state, index)

    def remove(self, rows: Sequence[int] | torch.Tensor) -> None:
        """Rows leave; the others close up in order."""
        gone = set(torch.as_tensor(rows, dtype=torch.int64).reshape(-1).tolist())
        self.reorder([i for i in range(self.rows) if i not in gone])

    def move(self, source: int, target: int) -> None:
        """One-way move: row ``target`` takes row ``source``'s state (``source`` keeps a copy)."""
        index = list(range(self.rows))
        index[target] = source
        self.reorder(index)

    def swap(self, a: int, b: int) -> None:
        index = list(range(self.rows))
        index[a], index[b] = b, a
        self.reorder(index)

    def truncate(self, rows: int) -> None:
        """Keep the first ``rows`` rows (the batch shrank after its last rows left)."""
        self.reorder(list(range(rows)))

    def subset(self, rows: torch.Tensor | Sequence[int]) -> BatchState:
        """A copy holding only ``rows``, for a host that runs a batch in parts (group beam search)."""
        index = torch.as_tensor(rows, dtype=torch.int64, device=self.device).reshape(-1)
        part = BatchState(self.pipeline, self.device)
        part._started = self._started
        part.prompt_lengths = self.prompt_lengths.index_select(0, index)
        part.steps = self.steps.index_select(0, index)
        part.seeds = self.seeds.index_select(0, index)
        for element in self._elements:
            state = self._states.get(id(element))
            if state is None:
                part._states[id(element)] = None
            elif element.follows_rows:
                # Shared items, not clones: the parts are read within one step.
                part._states[id(element)] = {
                    k: v.index_select(0, index.to(v.device)) if isinstance(v, torch.Tensor) else [v[i] for i in index.tolist()]
                    for k, v in state.items()
                }
            else:
                self._refuse_fixed("running a batch in parts")
        return part

    def fork(self) -> BatchState:
        """An independent copy whose rows can advance on their own (a speculative verify step).

        Tensors are copied and list items cloned with ``clone_row``, so
        accepting tokens on the fork leaves this state as it was.
        """
        self._refuse_fixed("forking a batch")
        copy = BatchState(self.pipeline, self.device)
        copy._started = self._started
        copy.prompt_lengths, copy.steps, copy.seeds = self.prompt_lengths, self.steps, self.seeds
        for element in self._elements:
            state = self._states.get(id(element))
            copy._states[id(element)] = None if state is None else {
                k: v.clone() if isinstance(v, torch.Tensor) else [element.clone_row(item) for item in v]
                for k, v in state.items()
            }
        return copy

    def _refuse_fixed(self, what: str, element: Element | None = None) -> None:
        fixed = [element] if element is not None else [
            e for e in self._elements if not e.follows_rows and self._states.get(id(e)) is not None
        ]
        if fixed:
            names = ", ".join(repr(e.name) for e in fixed)
            raise RowStateError(
                f"{what} is not supported by {names}: its state cannot follow rows (follows_rows = False)"
            )

    # -- steps -------------------------------------------------------------------------

    def accept(self, tokens: torch.Tensor) -> None:
        """Each row's chosen token ([rows]): every stateful element learns it, and steps advance."""
        tokens = tokens.reshape(-1)
        if tokens.shape[0] != self.rows:
            raise RowStateError(f"accept got {tokens.shape[0]} tokens for {self.rows} rows")
        for element in self._elements:
            state = self._states.get(id(element))
            if state is not None:
                call_named(_kind(element), element, None, element.accept, state, tokens)
        self.steps = self.steps + 1
        self._started = True

    def process(self, input_ids: torch.Tensor, scores: torch.Tensor, **fields: Any) -> torch.Tensor:
        """Every logits stage for this step (no selection, no accept)."""
        return self.pipeline.process(scores, self.context(input_ids, **fields))

    __call__ = process

    def next_tokens(self, input_ids: torch.Tensor, scores: torch.Tensor, **fields: Any) -> torch.Tensor:
        """Logits stages, the selector, then ``accept``: one token per row."""
        tokens = self.pipeline.choose(scores, self.context(input_ids, **fields))
        self.accept(tokens)
        return tokens
