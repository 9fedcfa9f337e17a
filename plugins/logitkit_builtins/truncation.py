"""Truncation samplers: keep the head of the distribution, set the tail to -inf."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field

from logitkit import Processor, ProcessorConfig, Stage, StepContext

NEG_INF = float("-inf")


class TopKConfig(ProcessorConfig):
    top_k: int = Field(default=50, ge=1, description="Keep the k highest-scoring tokens.")
    min_tokens_to_keep: int = Field(default=1, ge=1)


class TopK(Processor):
    """Keep the k tokens with the highest scores (ties at the k-th score are kept)."""

    name = "top_k"
    stage = Stage.TRUNCATION
    priority = 20
    Config = TopKConfig
    argmax_invariant = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        k = min(max(self.config.top_k, self.config.min_tokens_to_keep), scores.shape[-1])
        kth = torch.topk(scores, k, dim=-1).values[..., -1:]
        return scores.masked_fill(scores < kth, NEG_INF)


class TopPConfig(ProcessorConfig):
    top_p: float = Field(default=1.0, gt=0, le=1, description="Keep the smallest set whose probability reaches p.")
    min_tokens_to_keep: int = Field(default=1, ge=1)


class TopP(Processor):
    """Nucleus sampling: keep the most likely tokens whose cumulative probability reaches p."""

    name = "top_p"
    stage = Stage.TRUNCATION
    priority = 30
    Config = TopPConfig
    argmax_invariant = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        ascending, order = torch.sort(scores, dim=-1)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cumulative <= (1 - self.config.top_p)
        drop_sorted[..., -self.config.min_tokens_to_keep :] = False
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        return scores.masked_fill(drop, NEG_INF)


class MinPConfig(ProcessorConfig):
    min_p: float = Field(default=0.0, ge=0, le=1, description="Drop tokens below min_p times the top probability.")
    min_tokens_to_keep: int = Field(default=1, ge=1)


class MinP(Processor):
    """Keep tokens whose probability is at least min_p times the most likely token's."""

    name = "min_p"
    stage = Stage.TRUNCATION
    priority = 40
    Config = MinPConfig
    argmax_invariant = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        probs = scores.softmax(dim=-1)
        threshold = self.config.min_p * probs.amax(dim=-1, keepdim=True)
        drop = probs < threshold
        k = min(self.config.min_tokens_to_keep, scores.shape[-1])
        drop.scatter_(-1, torch.topk(probs, k, dim=-1).indices, False)
        return scores.masked_fill(drop, NEG_INF)


def register_processors(register: Callable[..., None]) -> None:
    for cls in (TopK, TopP, MinP):
        register(cls)
