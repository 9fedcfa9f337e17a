"""A persistent batch run the way vLLM's V1 ``InputBatch`` runs it, for testing an adapter against solo runs.

Each step: finished and preempted requests leave (their slots become holes),
waiting requests fill the lowest holes first, then the batch condenses (the
last row moves one-way into the lowest hole) and two random rows may swap.
The events go to a ``sink`` in vLLM's order (removed, added, moved); a
preempted request comes back later with its output list, as vLLM resumes it.
Logits are seeded per (request, step), so a solo run can recompute them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from logitkit import Pipeline
from logitkit.state import NO_SEED

Added = tuple[int, Any, list[int], list[int]]
Moved = tuple[int, int, bool]


@dataclass
class SimRequest:
    rid: int
    prompt: list[int]
    #: What travels in the added event's params slot (vLLM: the SamplingParams).
    params: Any
    max_tokens: int
    seed: int | None = None
    output: list[int] = field(default_factory=list)
    #: step -> the logits row the sink returned for this request.
    processed: dict[int, torch.Tensor] = field(default_factory=dict)


class Sink(Protocol):
    def update(self, removed: list[int], added: list[Added], moved: list[Moved], batch_size: int) -> None: ...

    def apply(self, logits: torch.Tensor) -> torch.Tensor: ...


def step_logits(rid: int, step: int, vocab: int) -> torch.Tensor:
    """The model's logits for request ``rid`` at ``step``: the same in the batch and in a solo run."""
    generator = torch.Generator().manual_seed(rid * 100_003 + step)
    return torch.randn(vocab, generator=generator) * 3


def run_batch(requests: list[SimRequest], sink: Sink, *, vocab: int, max_batch: int, seed: int = 0) -> int:
    """Decode every request through ``sink`` under random joins, leaves, preemptions, moves and swaps.

    The token each row takes is the argmax of what the sink returned. Returns the number of steps.
    """
    rng = random.Random(seed)
    waiting = list(requests)
    slots: list[SimRequest | None] = []
    steps = 0
    while waiting or any(slots):
        removed: list[int] = []
        for i, req in enumerate(slots):
            if req is None:
                continue
            if len(req.output) >= req.max_tokens:
                slots[i] = None
                removed.append(i)
            elif req.output and rng.random() < 0.05:  # preempted: back to the queue, output kept
                slots[i] = None
                removed.append(i)
                waiting.insert(rng.randrange(len(waiting) + 1), req)
        added: list[Added] = []
        admit = rng.randrange(0, 4)
        while waiting and admit and sum(r is not None for r in slots) < max_batch:
            req = waiting.pop(0)
            admit -= 1
            holes = [i for i, r in enumerate(slots) if r is None]
            index = holes[0] if holes else len(slots)
            if index == len(slots):
                slots.append(None)
            slots[index] = req
            added.append((index, req.params, req.prompt, req.output))
        moved: list[Moved] = []
        while slots and slots[-1] is None:
            slots.pop()
        holes = [i for i, r in enumerate(slots) if r is None]
        while holes:
            hole, last = holes.pop(0), len(slots) - 1
            slots[hole], slots[last] = slots[last], None
            moved.append((last, hole, False))
            while slots and slots[-1] is None:
                slots.pop()
            holes = [i for i in holes if i < len(slots)]
        if len(slots) > 1 and rng.random() < 0.3:
            a, b = rng.sample(range(len(slots)), 2)
            slots[a], slots[b] = slots[b], slots[a]
            moved.append((a, b, True))
        sink.update(removed, added, moved, len(slots))
        if not slots:
            continue
        live = [r for r in slots if r is not None]
        logits = torch.stack([step_logits(r.rid, len(r.output), vocab) for r in live])
        out = sink.apply(logits.clone())
        for row, req in enumerate(live):
            req.processed[len(req.output)] = out[row].clone()
            req.output.append(int(out[row].argmax()))
        steps += 1
    return steps


def solo_rows(pipeline: Pipeline, req: SimRequest, vocab: int, mask: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[torch.Tensor]:
    """The scores ``pipeline`` gives ``req`` run alone, fed the tokens it took in the batch."""
    state = pipeline.new_state()
    state.add([req.prompt], seeds=[NO_SEED if req.seed is None else req.seed])
    rows = []
    for step, token in enumerate(req.output):
        history = torch.tensor([req.prompt + req.output[:step]], dtype=torch.int64)
        scores = state.process(history, step_logits(req.rid, step, vocab)[None])[0]
        rows.append(mask(scores) if mask is not None else scores)
        state.accept(torch.tensor([token]))
    return rows
