"""Token masks: suppress fixed tokens always or at one step, or allow only what a callable permits."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from pydantic import Field, NonNegativeInt

from logitkit import Processor, ProcessorConfig, Stage, StepContext, TokenSettings
from logitkit_builtins._tokens import NEG_INF, MaskCache


class SuppressTokensConfig(ProcessorConfig):
    suppress_tokens: list[NonNegativeInt] = Field(min_length=1, description="Token ids that are never generated.")


class SuppressTokens(Processor):
    """Set the scores of the listed tokens to -inf at every step."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    name = "suppress_tokens"
    stage = Stage.LOGITS
    priority = 140
    Config = SuppressTokensConfig
    token_id_fields = ("suppress_tokens",)

    def __init__(self, config: Any = None, tokens: TokenSettings | None = None) -> None:
        super().__init__(config, tokens)
        self.masks = MaskCache(self.config.suppress_tokens)

    @classmethod
    def suppressed_tokens(cls, config: Any) -> set[int]:
        return set(config.suppress_tokens)

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores.masked_fill(self.masks.get(scores.shape[-1], scores.device), NEG_INF)


class BeginSuppressTokensConfig(ProcessorConfig):
    begin_suppress_tokens: list[NonNegativeInt] = Field(
        min_length=1, description="Token ids that may not be the first generated token."
    )
    begin_step: NonNegativeInt = Field(
        default=0, description="The step (tokens generated so far) at which they are suppressed."
    )


class BeginSuppressTokens(Processor):
    """Set the scores of the listed tokens to -inf at one step, by default the first generated token."""

    name = "begin_suppress_tokens"
    stage = Stage.LOGITS
    priority = 150
    Config = BeginSuppressTokensConfig
    token_id_fields = ("begin_suppress_tokens",)

    def __init__(self, config: Any = None, tokens: TokenSettings | None = None) -> None:
        super().__init__(config, tokens)
        self.masks = MaskCache(self.config.begin_suppress_tokens)

    mixed_rows = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self.config.begin_step not in ctx.step_list:
            return scores
        rows = (ctx.steps == self.config.begin_step).to(scores.device).unsqueeze(-1)
        return scores.masked_fill(rows & self.masks.get(scores.shape[-1], scores.device), NEG_INF)


#: A batched constraint: ``(input_ids [rows, length], vocab_size)`` to an allowed mask ``[rows, vocab]`` (bool).
BatchedAllowed = Callable[[torch.Tensor, int], torch.Tensor]
#: transformers' per-row constraint: ``(batch_id, row_ids) -> allowed token ids``.
PerRowAllowed = Callable[[int, torch.Tensor], Sequence[int]]


class PrefixAllowedTokensConfig(ProcessorConfig):
    num_beams: int = Field(
        default=1, ge=1, description="Consecutive rows per prompt (num_beams or num_return_sequences)."
    )


class PrefixAllowedTokens(Processor):
    """Allow only the tokens a Python callable permits for each row's prefix (built in code only)."""

    name = "prefix_allowed_tokens"
    stage = Stage.LOGITS
    priority = 90
    Config = PrefixAllowedTokensConfig
    needs = frozenset({"input_ids"})
    code_only = True

    def __init__(
        self,
        config: Any = None,
        tokens: TokenSettings | None = None,
        *,
        fn: BatchedAllowed | None = None,
        per_row_fn: PerRowAllowed | None = None,
    ) -> None:
        super().__init__(config, tokens)
        if (fn is None) == (per_row_fn is None):
            raise TypeError("prefix_allowed_tokens needs exactly one of fn= (batched) or per_row_fn= (transformers' form)")
        self.fn: BatchedAllowed = fn if fn is not None else per_row(per_row_fn, self.config.num_beams)  # type: ignore[arg-type]

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        allowed = self.fn(ctx.input_ids, scores.shape[-1]).to(device=scores.device, dtype=torch.bool)
        mask = torch.zeros_like(scores).masked_fill(~allowed, NEG_INF)
        constrained = scores + mask
        # Where every row of a prompt lost all its allowed tokens, keep the constraint with a score of 0.
        beams = self.config.num_beams
        dead = constrained.amax(dim=-1).isneginf().view(-1, beams).all(dim=-1, keepdim=True)
        return torch.where(dead.repeat_interleave(beams, dim=0), mask, constrained)


def per_row(fn: PerRowAllowed, num_beams: int = 1) -> BatchedAllowed:
    """Adapt transformers' ``prefix_allowed_tokens_fn(batch_id, ids) -> list[int]`` to the batched form.

    The per-row function can only be called once per row, so this adapter
    loops; write a batched ``fn`` (one tensor op for all rows) when speed matters.
    """

    def batched(input_ids: torch.Tensor, vocab: int) -> torch.Tensor:
        allowed = torch.zeros(input_ids.shape[0], vocab, dtype=torch.bool, device=input_ids.device)
        for row in range(input_ids.shape[0]):
            ids = list(fn(row // num_beams, input_ids[row]))
            if not ids:
                raise ValueError(f"prefix_allowed_tokens: the callable allowed no token for batch id {row // num_beams}")
            allowed[row, ids] = True
        return allowed

    return batched


def prefix_allowed_tokens(
    fn: BatchedAllowed | None = None,
    *,
    per_row_fn: PerRowAllowed | None = None,
    num_beams: int = 1,
    tokens: TokenSettings | None = None,
) -> PrefixAllowedTokens:
    """Build the processor in code: ``prefix_allowed_tokens(lambda ids, vocab_size: mask)``."""
    return PrefixAllowedTokens(PrefixAllowedTokensConfig(num_beams=num_beams), tokens, fn=fn, per_row_fn=per_row_fn)


def register_processors(register: Callable[..., None]) -> None:
    register(SuppressTokens)
    register(BeginSuppressTokens)
    register(PrefixAllowedTokens)
