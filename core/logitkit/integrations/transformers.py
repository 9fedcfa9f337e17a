"""Running a logitkit pipeline inside transformers' ``model.generate``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

if TYPE_CHECKING:
    from logitkit.pipeline import Pipeline


class LogitkitLogitsProcessor(LogitsProcessor):  # type: ignore[misc]
    """A transformers ``LogitsProcessor`` that runs a logitkit pipeline.

    With ``include_selector`` (the default) the pipeline's selector also runs:
    every score but the chosen token's becomes -inf, so transformers' own
    greedy or sampling step, and any warper it applies after custom processors
    (top_k, top_p, temperature), can only keep logitkit's choice.
    """

    def __init__(self, pipeline: Pipeline, include_selector: bool = True) -> None:
        self.pipeline = pipeline
        self.include_selector = include_selector

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        pipe = self.pipeline
        ctx = pipe.step_context(input_ids)
        processed = pipe.process(scores, ctx)
        if not self.include_selector or pipe.selector is None:
            return processed
        tokens = pipe.select(processed, ctx, raw=scores)
        pipe.accept(tokens)
        chosen = torch.full_like(processed, float("-inf"))
        return chosen.scatter(-1, tokens.unsqueeze(-1), 0.0)


def as_logits_processor_list(pipeline: Pipeline, include_selector: bool = True) -> Any:
    return LogitsProcessorList([LogitkitLogitsProcessor(pipeline, include_selector)])
