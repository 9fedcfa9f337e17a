"""Length control through the eos score: forbid it before a minimum length, or raise it after a start."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from pydantic import Field, NonNegativeInt

from logitkit import CheckContext, Processor, ProcessorConfig, Stage, StepContext, TokenSettings
from logitkit_builtins._tokens import NEG_INF, MaskCache, eos_ids, needs_eos


class _EosProcessor(Processor):
    """A processor acting on the eos tokens declared in the config's ``tokens:`` section."""

    def __init__(self, config: Any = None, tokens: TokenSettings | None = None) -> None:
        super().__init__(config, tokens)
        self.eos = eos_ids(self.tokens)
        self.masks = MaskCache(self.eos)

    @classmethod
    def check(cls, config: Any, context: CheckContext) -> Iterable[str]:
        yield from needs_eos(context)

    mixed_rows = True

    def without_eos(self, scores: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``scores`` with eos removed in the ``rows`` ([batch] bool) that need it."""
        mask = self.masks.get(scores.shape[-1], scores.device)
        return scores.masked_fill(rows.to(scores.device).unsqueeze(-1) & mask, NEG_INF)


class MinLengthConfig(ProcessorConfig):
    min_length: NonNegativeInt = Field(default=0, description="Eos is forbidden while the sequence (prompt included) is shorter.")


class MinLength(_EosProcessor):
    """Forbid eos while the whole sequence, prompt included, is shorter than min_length."""

    name = "min_length"
    stage = Stage.LOGITS
    priority = 70
    Config = MinLengthConfig

    @classmethod
    def check(cls, config: Any, context: CheckContext) -> Iterable[str]:
        yield from super().check(config, context)
        limit = getattr(context.generation, "max_length", None)
        if limit is not None and config.min_length > limit:
            yield f"min_length ({config.min_length}) is greater than generation.max_length ({limit}): eos could never be generated"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if ctx.input_ids.shape[-1] >= self.config.min_length and ctx.aligned:
            return scores
        return self.without_eos(scores, ctx.context_lengths < self.config.min_length)


class MinNewTokensConfig(ProcessorConfig):
    min_new_tokens: NonNegativeInt = Field(default=0, description="Eos is forbidden until this many tokens were generated.")


class MinNewTokens(_EosProcessor):
    """Forbid eos until min_new_tokens tokens have been generated (the prompt does not count)."""

    name = "min_new_tokens"
    stage = Stage.LOGITS
    priority = 80
    Config = MinNewTokensConfig

    @classmethod
    def check(cls, config: Any, context: CheckContext) -> Iterable[str]:
        yield from super().check(config, context)
        limit = getattr(context.generation, "max_new_tokens", None)
        if limit is not None and config.min_new_tokens > limit:
            yield f"min_new_tokens ({config.min_new_tokens}) is greater than generation.max_new_tokens ({limit}): eos could never be generated"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if min(ctx.step_list) >= self.config.min_new_tokens:
            return scores
        return self.without_eos(scores, ctx.steps < self.config.min_new_tokens)


class ExponentialDecayConfig(ProcessorConfig):
    start_index: NonNegativeInt = Field(description="Generated tokens after which the eos boost starts.")
    decay_factor: float = Field(gt=0, description="Growth per token past the start: > 1 favours ending, < 1 discourages it.")


class ExponentialDecayLengthPenalty(_EosProcessor):
    """Raise the eos score exponentially once start_index tokens have been generated."""

    name = "exponential_decay_length_penalty"
    stage = Stage.LOGITS
    priority = 130
    Config = ExponentialDecayConfig

    def eos_index(self, vocab: int, device: torch.device) -> torch.Tensor:
        """The eos ids inside the vocab, as a tensor built once per (vocab, device)."""
        cache: dict[tuple[int, torch.device], torch.Tensor] = self.__dict__.setdefault("_eos_index", {})
        if (vocab, device) not in cache:
            cache[(vocab, device)] = torch.tensor([e for e in self.eos if e < vocab], dtype=torch.long, device=device)
        return cache[(vocab, device)]

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if max(ctx.step_list) <= self.config.start_index or not self.eos:
            return scores
        past = (ctx.steps - self.config.start_index).clamp(min=0).to(scores.device)
        eos = self.eos_index(scores.shape[-1], scores.device)
        current = scores.index_select(1, eos)
        # |score| keeps the push upward even for negative logits; -inf stays -inf.
        growth = torch.exp(past.to(torch.float64) * math.log(self.config.decay_factor))
        # Saturate at the dtype's largest value instead of overflowing (after ~1,750 steps at 1.5).
        growth = growth.clamp(max=float(torch.finfo(scores.dtype).max)) - 1
        boost = current.abs() * growth.to(current.dtype).unsqueeze(-1)
        boost = boost.masked_fill(~torch.isfinite(current), 0.0)
        return scores.index_add(1, eos, boost)


def register_processors(register: Callable[..., None]) -> None:
    register(MinLength)
    register(MinNewTokens)
    register(ExponentialDecayLengthPenalty)
