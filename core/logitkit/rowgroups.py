"""Running processors that see one step at a time on a batch whose rows are at different steps.

A processor declares ``mixed_rows = True`` when it reads per-row steps and
prompt lengths itself. Any other processor, on a mixed batch, runs once per
group of rows that share their prompt length and step, on those rows' own
columns: exactly what it would see if each group were decoded alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from logitkit.processor import Processor, StepContext


class Grouped(Processor):
    """``processor`` run once per group of rows sharing (prompt length, step)."""

    mixed_rows = True

    def __init__(self, processor: Processor) -> None:  # no config of its own
        self.processor = processor
        self.config = processor.config
        self.tokens = processor.tokens
        self.name = processor.name  # type: ignore[misc]
        self.stage = processor.stage  # type: ignore[misc]

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        out = torch.empty_like(scores)
        for rows in ctx.row_groups():
            index = torch.tensor(rows, dtype=torch.int64, device=scores.device)
            out[index] = self.processor.apply(scores[index], ctx.rows(rows))
        return out


def for_context(processors: Sequence[Processor], ctx: StepContext) -> Sequence[Processor]:
    """``processors``, with those that need aligned rows grouped when ``ctx``'s rows are mixed."""
    if all(p.mixed_rows for p in processors) or ctx.uniform:
        return processors
    return [p if p.mixed_rows else Grouped(p) for p in processors]
