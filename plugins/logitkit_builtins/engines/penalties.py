"""OpenAI's frequency and presence penalties, counted over generated tokens only.

Reference: the OpenAI API's parameter guide (``mu[j] -> mu[j] - c[j] * alpha_frequency
- float(c[j] > 0) * alpha_presence``); vLLM (``vllm/v1/sample/ops/penalties.py``) and
SGLang count the same way, over the output tokens and not the prompt.
"""

from __future__ import annotations

import torch
from pydantic import Field

from logitkit import Processor, ProcessorConfig, Stage, StepContext


def generated_counts(scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    """How often each token id occurs among the generated tokens of each row: ``[batch, vocab]``."""
    generated = ctx.input_ids[:, ctx.prompt_length :]
    counts = torch.zeros(scores.shape, dtype=scores.dtype, device=scores.device)
    if generated.shape[-1] == 0:
        return counts
    generated = generated.to(scores.device)
    vocab = scores.shape[-1]
    # An id past the vocabulary (a history from a bigger model) has no score to penalize.
    ones = (generated < vocab).to(scores.dtype)
    return counts.scatter_add(-1, generated.clamp(max=vocab - 1), ones)


class FrequencyPenaltyConfig(ProcessorConfig):
    frequency_penalty: float = Field(
        default=0.0,
        ge=-2,
        le=2,
        description="Subtracted once per earlier occurrence of a token in the output.",
    )


class FrequencyPenalty(Processor):
    """Subtract frequency_penalty times the number of times a token was generated (OpenAI)."""

    name = "frequency_penalty"
    stage = Stage.LOGITS
    priority = 61
    Config = FrequencyPenaltyConfig
    needs = frozenset({"input_ids"})

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self.config.frequency_penalty == 0:
            return scores
        return scores - self.config.frequency_penalty * generated_counts(scores, ctx)


class PresencePenaltyConfig(ProcessorConfig):
    presence_penalty: float = Field(
        default=0.0,
        ge=-2,
        le=2,
        description="Subtracted once from every token already present in the output.",
    )


class PresencePenalty(Processor):
    """Subtract presence_penalty from every token generated at least once (OpenAI)."""

    name = "presence_penalty"
    stage = Stage.LOGITS
    priority = 62
    Config = PresencePenaltyConfig
    needs = frozenset({"input_ids"})

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self.config.presence_penalty == 0:
            return scores
        present = (generated_counts(scores, ctx) > 0).to(scores.dtype)
        return scores - self.config.presence_penalty * present
