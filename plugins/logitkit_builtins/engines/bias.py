"""Token-level biases from the OpenAI API and vLLM: ``logit_bias`` and ``allowed_token_ids``.

References: OpenAI chat completions ``logit_bias`` (token id -> bias in
[-100, 100], added to the logits before sampling); vLLM's
``SamplingParams.allowed_token_ids`` (every other token is masked), applied
first in ``vllm/v1/sample/sampler.py``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import torch
from pydantic import Field, NonNegativeInt

from logitkit import CheckContext, Processor, ProcessorConfig, Stage, StepContext

Bias = Annotated[float, Field(ge=-100, le=100)]


def _out_of_vocab(ids: Iterable[int], vocab_size: int | None) -> list[int]:
    return sorted(i for i in ids if vocab_size is not None and i >= vocab_size)


def _in_vocab(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    """Bool mask of the ids the model can emit: the rest are dropped at run time (docs/reliability.md)."""
    return ids < vocab


class LogitBiasConfig(ProcessorConfig):
    logit_bias: dict[NonNegativeInt, Bias] = Field(
        default_factory=dict,
        description="Token id -> bias in [-100, 100], added to that token's logit.",
    )


class LogitBias(Processor):
    """Add a fixed bias to chosen token ids (OpenAI's logit_bias; -100 bans, +100 nearly forces)."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    name = "logit_bias"
    stage = Stage.LOGITS
    priority = -20
    Config = LogitBiasConfig

    def __init__(self, config: LogitBiasConfig | None = None, tokens: object = None) -> None:
        super().__init__(config, tokens)  # type: ignore[arg-type]
        items = sorted(self.config.logit_bias.items())
        self._ids = torch.tensor([i for i, _ in items], dtype=torch.long)
        self._bias = torch.tensor([b for _, b in items], dtype=torch.float32)

    @classmethod
    def check(cls, config: LogitBiasConfig, context: CheckContext) -> Iterable[str]:  # type: ignore[override]
        bad = _out_of_vocab(config.logit_bias, context.tokens.vocab_size)
        if bad:
            yield f"logit_bias: token ids {bad} are >= tokens.vocab_size ({context.tokens.vocab_size})"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self._ids.numel() == 0:
            return scores
        keep = _in_vocab(self._ids, scores.shape[-1])
        bias = torch.zeros(scores.shape[-1], dtype=scores.dtype, device=scores.device)
        bias = bias.index_put(
            (self._ids[keep].to(scores.device),),
            self._bias[keep].to(scores.device, scores.dtype),
        )
        return scores + bias


class AllowedTokenIdsConfig(ProcessorConfig):
    allowed_token_ids: list[NonNegativeInt] = Field(
        min_length=1, description="Only these token ids may be chosen; every other token is masked."
    )


class AllowedTokenIds(Processor):
    """Mask every token not in allowed_token_ids (vLLM's whitelist)."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    name = "allowed_token_ids"
    stage = Stage.LOGITS
    priority = -30
    Config = AllowedTokenIdsConfig

    @classmethod
    def check(cls, config: AllowedTokenIdsConfig, context: CheckContext) -> Iterable[str]:  # type: ignore[override]
        bad = _out_of_vocab(config.allowed_token_ids, context.tokens.vocab_size)
        if bad:
            yield f"allowed_token_ids: token ids {bad} are >= tokens.vocab_size ({context.tokens.vocab_size})"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        ids = torch.tensor(self.config.allowed_token_ids, dtype=torch.long)
        ids = ids[_in_vocab(ids, scores.shape[-1])].to(scores.device)
        allowed = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
        allowed[ids] = True
        return scores.masked_fill(~allowed, float("-inf"))
