"""The per-row state contract: a row's result never depends on the batch around it or on earlier runs.

``check_row_contract`` drives a one-element pipeline (the processor with the
``sample`` selector, or the selector alone) over a scripted model, and checks:

1. a row gives the same scores alone and in calls with rows at other
   steps and prompt lengths (rows joining at staggered calls);
2. under continuous batching (rows joining, leaving, swapping, moved into
   freed slots at random) every row equals its solo run at every step;
3. a fresh state reproduces a run;
4. a pipeline shared by threads gives every thread a private run's tokens.

Scores are compared bit for bit. An element declaring ``follows_rows =
False`` must instead be refused, with ``RowStateError``, by any host event
that would move its rows.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import BaseModel

from logitkit.pipeline import Pipeline
from logitkit.processor import Processor, Selector, TokenSettings
from logitkit.registry import build_registry
from logitkit.state import BatchState, RowStateError
from logitkit.testing.contract import ContractViolation, factory_for

#: Columns left of a row's own tokens hold this real token id, so reading them shows up.
BATCH_PAD = 2


class ScriptedModel:
    """Logits from a row's last two tokens by table lookups only, so every row is computed alike in any batch."""

    def __init__(self, vocab: int, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.last = torch.randn(vocab, vocab, generator=gen) * 3
        self.previous = torch.randn(vocab, vocab, generator=gen)

    def __call__(self, histories: list[list[int]]) -> torch.Tensor:
        last = torch.tensor([h[-1] for h in histories])
        previous = torch.tensor([h[-2] if len(h) > 1 else h[-1] for h in histories])
        return self.last[last] + self.previous[previous]


@dataclass(frozen=True)
class Request:
    prompt: tuple[int, ...]
    steps: int
    seed: int


#: One step of one row: (processed scores [vocab], chosen token).
Trace = list[tuple[torch.Tensor, int]]


def _requests(rng: random.Random, count: int, vocab: int) -> list[Request]:
    alphabet = min(vocab, 6)
    return [
        Request(
            tuple(rng.randrange(alphabet) for _ in range(rng.randint(1, 6))),
            rng.randint(3, 8),
            rng.randrange(2**31),
        )
        for _ in range(count)
    ]


def _batch_ids(histories: list[list[int]]) -> torch.Tensor:
    width = max(len(h) for h in histories)
    ids = torch.full((len(histories), width), BATCH_PAD, dtype=torch.int64)
    for row, history in enumerate(histories):
        ids[row, width - len(history) :] = torch.tensor(history)
    return ids


def _step(
    pipe: Pipeline, state: BatchState, histories: list[list[int]], model: ScriptedModel, context: Mapping[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    ids = _batch_ids(histories)
    logits = model(histories)
    ctx = state.context(ids, **context)
    processed = pipe.process(logits, ctx)
    tokens = pipe.select(processed, ctx, raw=logits)
    state.accept(tokens)
    return processed, tokens


def solo_run(pipe: Pipeline, request: Request, model: ScriptedModel, context: Mapping[str, Any]) -> Trace:
    """``request`` decoded alone, from a fresh state."""
    state = pipe.new_state()
    state.add([list(request.prompt)], seeds=[request.seed])
    history = list(request.prompt)
    trace: Trace = []
    for _ in range(request.steps):
        processed, tokens = _step(pipe, state, [history], model, context)
        trace.append((processed[0], int(tokens[0])))
        history.append(int(tokens[0]))
    return trace


def continuous_batching_run(
    pipe: Pipeline,
    requests: list[Request],
    model: ScriptedModel,
    context: Mapping[str, Any],
    rng: random.Random,
) -> list[Trace]:
    """Every request decoded in one persistent batch whose rows join, leave and move at random."""
    state = pipe.new_state()
    waiting = list(range(len(requests)))
    rows: list[int] = []  # request index of each row
    histories: list[list[int]] = []
    traces: list[Trace] = [[] for _ in requests]
    while waiting or rows:
        for _ in range(rng.randint(0 if rows else 1, 2)):
            if waiting:
                r = waiting.pop(0)
                state.add([list(requests[r].prompt)], seeds=[requests[r].seed])
                rows.append(r)
                histories.append(list(requests[r].prompt))
        if len(rows) > 1 and rng.random() < 0.5:
            a, b = rng.sample(range(len(rows)), 2)
            state.swap(a, b)
            rows[a], rows[b] = rows[b], rows[a]
            histories[a], histories[b] = histories[b], histories[a]
        processed, tokens = _step(pipe, state, histories, model, context)
        for row, r in enumerate(rows):
            traces[r].append((processed[row], int(tokens[row])))
            histories[row].append(int(tokens[row]))
        done = [row for row, r in enumerate(rows) if len(traces[r]) == requests[r].steps]
        for row in sorted(done, reverse=True):
            last = len(rows) - 1
            if row != last and rng.random() < 0.5:
                # vLLM's condense: the last row moves into the freed slot.
                state.move(last, row)
                rows[row], histories[row] = rows[last], histories[last]
                state.truncate(last)
                rows.pop()
                histories.pop()
            else:
                state.remove([row])
                rows.pop(row)
                histories.pop(row)
    return traces


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return bool(torch.equal(torch.isnan(a), torch.isnan(b))) and bool(
        torch.equal(torch.nan_to_num(a, nan=0.0), torch.nan_to_num(b, nan=0.0))
    )


def _compare(name: str, what: str, expected: list[Trace], got: list[Trace]) -> None:
    for r, (want, have) in enumerate(zip(expected, got, strict=True)):
        for step, ((s1, t1), (s2, t2)) in enumerate(zip(want, have, strict=True)):
            if t1 != t2 or not _same(s1, s2):
                raise ContractViolation(
                    f"{name}: request {r} differs at step {step} {what} "
                    f"(token {t2} where alone gives {t1})"
                )


def _staggered_call(
    pipe: Pipeline,
    requests: list[Request],
    model: ScriptedModel,
    context: Mapping[str, Any],
    rng: random.Random,
) -> list[Trace]:
    """Rows join at different calls, so the last call holds each at a random step of its own."""
    state = pipe.new_state()
    target = [rng.randrange(r.steps) for r in requests]
    calls = max(target) + 1
    rows: list[int] = []
    histories: list[list[int]] = []
    traces: list[Trace] = [[] for _ in requests]
    for call in range(calls):
        for r, request in enumerate(requests):
            if call == calls - 1 - target[r]:
                state.add([list(request.prompt)], seeds=[request.seed])
                rows.append(r)
                histories.append(list(request.prompt))
        processed, tokens = _step(pipe, state, histories, model, context)
        for row, r in enumerate(rows):
            traces[r].append((processed[row], int(tokens[row])))
            histories[row].append(int(tokens[row]))
    return traces


def check_row_contract(
    target: type[Processor] | type[Selector] | Processor | Selector,
    config: Mapping[str, Any] | BaseModel | None = None,
    *,
    tokens: TokenSettings | None = None,
    context: Mapping[str, Any] | None = None,
    vocab: int = 48,
    requests: int = 8,
    threads: int = 4,
    seed: int = 0,
) -> None:
    """Check the per-row state contract for a processor or selector; raises ``ContractViolation``."""
    element = factory_for(target, config, tokens)()
    name = f"{'selector' if isinstance(element, Selector) else 'processor'} {element.name!r}"
    tokens = tokens or TokenSettings()
    if isinstance(element, Selector):
        pipe = Pipeline([], element, tokens=tokens)
    else:
        sample = build_registry().selectors["sample"].cls(None, tokens)
        pipe = Pipeline([element], sample, tokens=tokens)
    fields = dict(context or {})
    model = ScriptedModel(vocab, seed)
    rng = random.Random(seed)
    batch = _requests(rng, requests, vocab)
    solo = [solo_run(pipe, r, model, fields) for r in batch]
    _compare(name, "when a fresh state runs it again", solo, [solo_run(pipe, r, model, fields) for r in batch])
    if not element.follows_rows:
        _check_refused(pipe, batch, name)
        return
    staggered = _staggered_call(pipe, batch, model, fields, rng)
    _compare(name, "in one call with rows at other steps", [t[: len(s)] for t, s in zip(solo, staggered, strict=True)], staggered)
    _compare(name, "under continuous batching", solo,
             continuous_batching_run(pipe, batch, model, fields, random.Random(seed + 1)))  # fmt: skip
    _check_threads(pipe, batch, solo, model, fields, threads, name, seed)


def _check_refused(pipe: Pipeline, batch: list[Request], name: str) -> None:
    state = pipe.new_state()
    state.add([list(batch[0].prompt)])
    for event, run in (
        ("a row joining", lambda: state.add([list(batch[1].prompt)])),
        ("a row leaving", lambda: state.remove([0])),
    ):
        try:
            run()
        except RowStateError:
            continue
        raise ContractViolation(f"{name}: declares follows_rows = False, but {event} was not refused")


def _check_threads(
    pipe: Pipeline,
    batch: list[Request],
    solo: list[Trace],
    model: ScriptedModel,
    context: Mapping[str, Any],
    threads: int,
    name: str,
    seed: int,
) -> None:
    results: list[list[Trace] | BaseException] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def work(i: int) -> None:
        barrier.wait()
        try:
            results[i] = continuous_batching_run(pipe, batch, model, context, random.Random(seed + 10 + i))
        except BaseException as exc:  # reported below, in the caller's thread
            results[i] = exc

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    for i, result in enumerate(results):
        if isinstance(result, BaseException):
            raise ContractViolation(f"{name}: thread {i} sharing the pipeline raised {result!r}") from result
        _compare(name, f"in thread {i} of {threads} sharing one pipeline", solo, result)

