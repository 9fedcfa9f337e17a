"""Forcing: at a given position, every token but the forced one gets -inf (the forced one gets 0)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator

from logitkit import CheckContext, Processor, ProcessorConfig, Stage, StepContext, TokenSettings
from logitkit_builtins._tokens import NEG_INF, MaskCache, eos_ids


def forced(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """-inf everywhere except 0 on the ``allowed`` vocab mask."""
    return torch.zeros_like(scores).masked_fill(~allowed, NEG_INF)


def forced_rows(scores: torch.Tensor, allowed: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``forced`` in the ``rows`` ([batch] bool) that are at the forced position; the others unchanged."""
    return torch.where(rows.to(scores.device).unsqueeze(-1), forced(scores, allowed), scores)


class ForcedBOSConfig(ProcessorConfig):
    forced_bos_token_id: NonNegativeInt | None = Field(
        default=None, description="Token forced as the first generated token; default: tokens.bos."
    )


class ForcedBOS(Processor):
    """Force a token right after the decoder start token (when the sequence is one token long)."""

    name = "forced_bos_token_id"
    stage = Stage.LOGITS
    priority = 100
    Config = ForcedBOSConfig
    token_id_fields = ("forced_bos_token_id",)

    def __init__(self, config: Any = None, tokens: TokenSettings | None = None) -> None:
        super().__init__(config, tokens)
        token = self.config.forced_bos_token_id
        self.token = token if token is not None else self.tokens.bos
        self.masks = MaskCache([] if self.token is None else [self.token])

    @classmethod
    def check(cls, config: Any, context: CheckContext) -> Iterable[str]:
        token = config.forced_bos_token_id if config.forced_bos_token_id is not None else context.tokens.bos
        if token is None:
            return ["needs a token: set forced_bos_token_id, or 'tokens: {bos: ID}' in the config"]
        return []

    @classmethod
    def forced_tokens(cls, config: Any) -> set[int]:
        return set() if config.forced_bos_token_id is None else {config.forced_bos_token_id}

    mixed_rows = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if ctx.aligned and ctx.input_ids.shape[-1] != 1:
            return scores
        return forced_rows(scores, self.masks.get(scores.shape[-1], scores.device), ctx.context_lengths == 1)


class ForcedEOSConfig(ProcessorConfig):
    forced_eos_token_id: list[NonNegativeInt] | None = Field(
        default=None, description="Token(s) forced at the last position; default: tokens.eos."
    )
    max_length: PositiveInt | None = Field(default=None, description="Total length (prompt included) whose last token is forced.")
    max_new_tokens: PositiveInt | None = Field(default=None, description="Or: number of new tokens whose last one is forced.")

    @field_validator("forced_eos_token_id", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value


class ForcedEOS(Processor):
    """Force an eos token at the last position allowed by max_length (or max_new_tokens)."""

    name = "forced_eos_token_id"
    stage = Stage.LOGITS
    priority = 110
    Config = ForcedEOSConfig
    token_id_fields = ("forced_eos_token_id",)

    def __init__(self, config: Any = None, tokens: TokenSettings | None = None) -> None:
        super().__init__(config, tokens)
        ids = self.config.forced_eos_token_id
        self.token_ids = list(ids) if ids is not None else eos_ids(self.tokens)
        self.masks = MaskCache(self.token_ids)

    @classmethod
    def complete(cls, config: Any, context: CheckContext) -> Any:
        # Without a length of its own, force at the generation section's limit.
        if config.max_length is not None or config.max_new_tokens is not None:
            return config
        generation = context.generation
        if generation.max_new_tokens is not None:
            return config.model_copy(update={"max_new_tokens": generation.max_new_tokens})
        if generation.max_length is not None:
            return config.model_copy(update={"max_length": generation.max_length})
        return config

    @classmethod
    def check(cls, config: Any, context: CheckContext) -> Iterable[str]:
        ids = config.forced_eos_token_id if config.forced_eos_token_id is not None else context.tokens.eos
        if not ids:
            yield "needs a token: set forced_eos_token_id, or 'tokens: {eos: ID}' in the config"
        if (config.max_length is None) == (config.max_new_tokens is None):
            yield "set exactly one of max_length or max_new_tokens (the position whose token is forced), or generation.max_new_tokens"

    @classmethod
    def forced_tokens(cls, config: Any) -> set[int]:
        return set(config.forced_eos_token_id or [])

    mixed_rows = True

    def last_position(self, ctx: StepContext) -> torch.Tensor:
        """Bool [batch]: rows whose next token is the last one allowed."""
        if self.config.max_length is not None:
            return ctx.context_lengths == self.config.max_length - 1
        return ctx.steps == (self.config.max_new_tokens or 0) - 1

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        rows = self.last_position(ctx)
        if not bool(rows.any()):
            return scores
        return forced_rows(scores, self.masks.get(scores.shape[-1], scores.device), rows)


class ForcedDecoderIdsConfig(ProcessorConfig):
    forced_decoder_ids: dict[NonNegativeInt, NonNegativeInt] = Field(
        min_length=1, description="Sequence position -> forced token id, e.g. {1: 50259} or [[1, 50259]]."
    )

    @field_validator("forced_decoder_ids", mode="before")
    @classmethod
    def _from_pairs(cls, value: Any) -> Any:
        # transformers' form: [[position, token], ...]; Whisper's [1, null] leaves position 1 free.
        if isinstance(value, (list, tuple)) and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in value):
            positions = [p[0] for p in value]
            if len(set(positions)) != len(positions):
                raise ValueError("a position is listed twice; force one token per position")
            value = {p[0]: p[1] for p in value}
        if isinstance(value, dict):
            return {pos: tok for pos, tok in value.items() if tok is not None}
        return value


class ForcedDecoderIds(Processor):
    """Force given tokens at given positions of the sequence (position = length of the sequence so far)."""

    name = "forced_decoder_ids"
    stage = Stage.LOGITS
    priority = 160
    Config = ForcedDecoderIdsConfig

    def __init__(self, config: Any = None, tokens: TokenSettings | None = None) -> None:
        super().__init__(config, tokens)
        self.masks = {pos: MaskCache([tok]) for pos, tok in self.config.forced_decoder_ids.items()}

    @classmethod
    def token_ids(cls, config: Any) -> Iterable[tuple[str, int]]:
        return ((f"forced_decoder_ids[{pos}]", tok) for pos, tok in config.forced_decoder_ids.items())

    @classmethod
    def forced_tokens(cls, config: Any) -> set[int]:
        return set(config.forced_decoder_ids.values())

    mixed_rows = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if ctx.aligned:
            cache = self.masks.get(ctx.input_ids.shape[-1])  # a shape, not a tensor value: no host sync
            if cache is None:
                return scores
            return forced(scores, cache.get(scores.shape[-1], scores.device))
        for position, cache in self.masks.items():
            rows = ctx.context_lengths == position
            if bool(rows.any()):
                scores = forced_rows(scores, cache.get(scores.shape[-1], scores.device), rows)
        return scores


def register_processors(register: Callable[..., None]) -> None:
    register(ForcedBOS)
    register(ForcedEOS)
    register(ForcedDecoderIds)
