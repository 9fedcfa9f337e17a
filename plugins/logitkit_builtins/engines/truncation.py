"""Truncation samplers from llama.cpp and text-generation-webui: top-n-sigma, top-a, tail-free.

References:
- top_n_sigma: llama.cpp ``llama_sampler_top_n_sigma_apply`` (src/llama-sampling.cpp),
  after Tang et al., "Top-nσ: Not All Logits Are You Need" (2024).
- top_a and tail-free: text-generation-webui ``TopALogitsWarper`` and
  ``TailFreeLogitsWarper`` (modules/sampler_hijack.py); tail-free after
  Trenton Bricken's 2019 "Tail Free Sampling" post, as in llama.cpp's former ``llama_sample_tail_free``.
"""

from __future__ import annotations

import torch
from pydantic import Field

from logitkit import Processor, ProcessorConfig, Stage, StepContext

NEG_INF = float("-inf")


def keep_top(drop: torch.Tensor, scores: torch.Tensor, k: int) -> torch.Tensor:
    """Never drop the ``k`` highest-scoring tokens of a row (``min_tokens_to_keep``)."""
    k = min(k, scores.shape[-1])
    return drop.scatter(-1, torch.topk(scores, k, dim=-1).indices, False)


class TopNSigmaConfig(ProcessorConfig):
    top_n_sigma: float = Field(
        default=1.0, gt=0, description="Keep logits within n standard deviations of the max."
    )
    min_tokens_to_keep: int = Field(default=1, ge=1)


class TopNSigma(Processor):
    """Keep tokens whose logit is at least max - n * std (std over the finite logits)."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    name = "top_n_sigma"
    # llama.cpp and text-generation-webui run it on raw logits, before top_k and temperature.
    stage = 250
    Config = TopNSigmaConfig
    argmax_invariant = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        logits = scores.float()
        finite = torch.isfinite(logits)
        count = finite.sum(dim=-1, keepdim=True).clamp(min=1)
        zeroed = torch.where(finite, logits, 0.0)
        mean = zeroed.sum(dim=-1, keepdim=True) / count
        var = (torch.where(finite, logits - mean, 0.0) ** 2).sum(dim=-1, keepdim=True) / count
        top = torch.where(finite, logits, NEG_INF).amax(dim=-1, keepdim=True)
        drop = logits < top - self.config.top_n_sigma * var.sqrt()
        drop = keep_top(drop, logits, self.config.min_tokens_to_keep)
        return scores.masked_fill(drop, NEG_INF)


class TopAConfig(ProcessorConfig):
    top_a: float = Field(
        default=0.0, ge=0, le=1, description="Drop tokens with p < top_a * p_max**2."
    )
    min_tokens_to_keep: int = Field(default=1, ge=1)


class TopA(Processor):
    """Drop tokens whose probability is below top_a times the square of the top probability."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    name = "top_a"
    stage = Stage.TRUNCATION
    priority = 39
    Config = TopAConfig
    argmax_invariant = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        probs = scores.float().softmax(dim=-1)
        top = probs.amax(dim=-1, keepdim=True)
        drop = probs < self.config.top_a * top * top
        drop = keep_top(drop, scores.float(), self.config.min_tokens_to_keep)
        return scores.masked_fill(drop, NEG_INF)


class TailFreeConfig(ProcessorConfig):
    tfs: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Keep the head until the normalized curvature mass reaches z.",
    )
    min_tokens_to_keep: int = Field(default=1, ge=1)


class TailFree(Processor):
    """Tail-free sampling: cut where the sorted distribution's second derivative mass exceeds z."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    name = "tfs"
    stage = Stage.TRUNCATION
    priority = 38
    Config = TailFreeConfig
    primary = "tfs"
    argmax_invariant = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self.config.tfs >= 1.0 or scores.shape[-1] < 3:
            return scores
        logits = scores.float()
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        probs = sorted_logits.softmax(dim=-1)
        curvature = probs.diff(dim=-1).diff(dim=-1).abs()
        total = curvature.sum(dim=-1, keepdim=True)
        # A flat row has no curvature at all: keep it whole rather than divide by zero.
        cdf = torch.where(total > 0, curvature / total.clamp(min=1e-30), 0.0).cumsum(dim=-1)
        batch = scores.shape[0]
        drop_sorted = torch.cat(
            (
                torch.zeros(batch, 1, dtype=torch.bool, device=scores.device),
                cdf > self.config.tfs,
                (total > 0).expand(batch, 1),
            ),
            dim=-1,
        )
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        drop = keep_top(drop, logits, self.config.min_tokens_to_keep)
        return scores.masked_fill(drop, NEG_INF)
