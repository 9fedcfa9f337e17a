"""Running a logitkit pipeline inside transformers' ``model.generate``.

transformers gives a logits processor no reset hook and no beam indices, so
the processor keeps a ``BatchState`` and works out what happened between
calls from what it sees:

- ``generate()`` reads the length of the list it was given and iterates it
  once while merging it with its own processors, before the first step. The
  list returned by ``as_hf()`` takes either as the start of a new generation.
- Between two calls of one generation every row grows by one token. When the
  rows kept their order, that token is accepted; when beam search reordered
  them, each row is matched to the row whose history it extends and the row
  state follows it. Input that extends no row starts a new generation too.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from logitkit.processor import Selector, StepContext
from logitkit.state import BatchState


class Recipe(Protocol):
    """What this integration uses of a ``Pipeline`` (typed here so the module never imports it)."""

    selector: Selector | None

    def start(self, input_ids: torch.Tensor) -> BatchState: ...
    def process(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor: ...
    def choose(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor: ...


class LogitkitLogitsProcessor(LogitsProcessor):  # type: ignore[misc]
    """A transformers ``LogitsProcessor`` that runs a logitkit pipeline.

    With ``include_selector`` (the default) the pipeline's selector also runs:
    every score but the chosen token's becomes -inf, so transformers' own
    greedy or sampling step, and any warper it applies after custom processors
    (top_k, top_p, temperature), can only keep logitkit's choice.
    One instance follows one generation at a time.
    """

    def __init__(self, pipeline: Recipe, include_selector: bool = True) -> None:
        self.pipeline = pipeline
        self.include_selector = include_selector
        self._state: BatchState | None = None
        self._last_ids: torch.Tensor | None = None

    def start_over(self) -> None:
        """Forget the rows: the next call starts a new generation."""
        self._state = None
        self._last_ids = None

    def _follow(self, input_ids: torch.Tensor) -> BatchState:
        """The batch state for this call: the last one advanced by a token, or a new one."""
        state, last = self._state, self._last_ids
        if state is not None and last is not None and _grew_by_one(last, input_ids):
            if not torch.equal(input_ids[:, :-1], last):
                source = _source_rows(last, input_ids[:, :-1])
                if source is None:
                    return self._new(input_ids)
                state.reorder(source)
            state.accept(input_ids[:, -1])
            return state
        return self._new(input_ids)

    def _new(self, input_ids: torch.Tensor) -> BatchState:
        self._state = self.pipeline.start(input_ids)
        return self._state

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        pipe = self.pipeline
        state = self._follow(input_ids)
        self._last_ids = input_ids.clone()
        ctx = state.context(input_ids)
        if not self.include_selector or pipe.selector is None:
            return pipe.process(scores, ctx)
        tokens = pipe.choose(scores, ctx)
        chosen = torch.full_like(scores, float("-inf"))
        return chosen.scatter(-1, tokens.unsqueeze(-1), 0.0)


def _grew_by_one(last: torch.Tensor, ids: torch.Tensor) -> bool:
    return ids.shape[0] == last.shape[0] and ids.shape[-1] == last.shape[-1] + 1


def _source_rows(last: torch.Tensor, prefixes: torch.Tensor) -> torch.Tensor | None:
    """For each row of ``prefixes``, a row of ``last`` equal to it (beam reorder); None if one has none."""
    same = (prefixes.unsqueeze(1) == last.unsqueeze(0)).all(dim=-1)
    if not bool(same.any(dim=-1).all()):
        return None
    return same.to(torch.int8).argmax(dim=-1)


class LogitkitProcessorList(LogitsProcessorList):  # type: ignore[misc]
    """The list ``as_hf()`` returns: ``generate()`` reading it marks a new generation."""

    def _start_over(self) -> None:
        for processor in list.__iter__(self):
            if isinstance(processor, LogitkitLogitsProcessor):
                processor.start_over()

    def __len__(self) -> int:
        self._start_over()
        return list.__len__(self)

    def __iter__(self) -> Iterator[Any]:
        self._start_over()
        return list.__iter__(self)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        for processor in list.__iter__(self):
            scores = processor(input_ids, scores)
        return scores


def as_logits_processor_list(pipeline: Recipe, include_selector: bool = True) -> Any:
    return LogitkitProcessorList([LogitkitLogitsProcessor(pipeline, include_selector)])
