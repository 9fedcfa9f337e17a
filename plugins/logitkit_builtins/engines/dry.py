"""DRY, "don't repeat yourself": penalize the token that would extend a repeat of earlier text.

References: text-generation-webui ``DRYLogitsProcessor`` (modules/sampler_hijack.py,
p-e-w's PR #5677) and llama.cpp ``llama_sampler_dry_apply`` (src/llama-sampling.cpp).
If the sequence ends with tokens ``... a b c`` and ``a b c x`` occurred before, ``x``
gets ``multiplier * base ** (n - allowed_length)`` subtracted, where ``n`` is the
length of the longest such match (capped at 50, as text-generation-webui caps it),
whenever ``n >= allowed_length``. Sequence breakers (for example a newline) end a match.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, NonNegativeInt

from logitkit import Processor, ProcessorConfig, Stage, StepContext, TokenSettings

log = logging.getLogger("logitkit_builtins.engines.dry")

#: Longest match considered; also keeps base ** n finite.
MAX_MATCH = 50


class DryConfig(ProcessorConfig):
    multiplier: float = Field(default=0.8, ge=0, description="Penalty scale; 0 switches DRY off.")
    base: float = Field(
        default=1.75, ge=1, le=10, description="Growth of the penalty per extra matched token."
    )
    allowed_length: int = Field(
        default=2, ge=1, description="Repeats shorter than this are not penalized."
    )
    penalty_last_n: int = Field(
        default=0, ge=0, description="Look back this many tokens; 0 means the whole sequence."
    )
    sequence_breakers: list[str] = Field(
        default_factory=lambda: ["\n", ":", '"', "*"],
        description="Strings that end a match; turned into token ids with the context's tokenizer.",
    )
    sequence_breaker_ids: list[NonNegativeInt] = Field(
        default_factory=list,
        description="Token ids that end a match, for pipelines without a tokenizer.",
    )


class Dry(Processor):
    """Penalize tokens that would continue a sequence already seen (DRY)."""

    name = "dry"
    # After the repetition penalties, as in llama.cpp's chain and text-generation-webui's priority list.
    stage = Stage.LOGITS
    priority = 80
    Config = DryConfig
    primary = "multiplier"
    needs = frozenset({"input_ids"})

    def __init__(
        self, config: DryConfig | None = None, tokens: TokenSettings | None = None
    ) -> None:
        super().__init__(config, tokens)
        self._resolved: tuple[int, list[int]] | None = None
        self._warned = False

    def breaker_ids(self, tokenizer: Any) -> list[int]:
        """The configured breaker ids plus each breaker string's last token (as text-generation-webui does)."""
        ids = list(self.config.sequence_breaker_ids)
        if not self.config.sequence_breakers:
            return ids
        if tokenizer is None:
            if not self._warned:
                log.warning(
                    "dry: no tokenizer in the context; the string sequence_breakers are not applied"
                )
                self._warned = True
            return ids
        if self._resolved is None or self._resolved[0] != id(tokenizer):
            # Prefix a letter so tokenizers that merge a leading space still give the breaker's own token.
            found = [
                tokenizer.encode(f"a{s}", add_special_tokens=False)[-1]
                for s in self.config.sequence_breakers
            ]
            self._resolved = (id(tokenizer), [int(t) for t in found])
        return ids + self._resolved[1]

    def match_lengths(self, ids: torch.Tensor, is_breaker: torch.Tensor) -> torch.Tensor:
        """For each position i < T-1: how many tokens ending at i equal the tokens ending the sequence."""
        batch, length = ids.shape
        run = torch.ones(batch, length - 1, dtype=torch.bool, device=ids.device)
        matched = torch.zeros(batch, length - 1, dtype=torch.long, device=ids.device)
        # One pass per match offset (at most MAX_MATCH), each vectorized over rows and positions.
        for m in range(min(MAX_MATCH, length - 1)):
            earlier = F.pad(ids[:, : length - 1], (m, 0), value=-1)[:, : length - 1]
            target = ids[:, length - 1 - m : length - m]
            same = earlier == target
            if m > 0:
                same &= ~is_breaker[:, length - 1 - m : length - m]
            run &= same
            if not bool(run.any()):
                break
            matched += run
        return matched

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        cfg = self.config
        ids = ctx.input_ids
        if cfg.penalty_last_n > 0:
            ids = ids[:, -cfg.penalty_last_n :]
        if cfg.multiplier == 0 or ids.shape[-1] < 2:
            return scores
        ids = ids.to(scores.device)
        breakers = torch.tensor(self.breaker_ids(ctx.tokenizer), dtype=ids.dtype, device=ids.device)
        is_breaker = torch.isin(ids, breakers)
        matched = self.match_lengths(ids, is_breaker)
        # A breaker at the end, or a breaker as the next token, means no penalty.
        matched = matched.masked_fill(is_breaker[:, -1:] | is_breaker[:, 1:], 0)
        vocab = scores.shape[-1]
        following = ids[:, 1:]
        # An id past the vocabulary has no score to penalize: its match counts for nothing.
        matched = matched.masked_fill(following >= vocab, 0)
        longest = torch.zeros(scores.shape, dtype=torch.long, device=scores.device)
        longest = longest.scatter_reduce(-1, following.clamp(max=vocab - 1), matched, reduce="amax")
        exponent = (longest - cfg.allowed_length).clamp(min=0).to(torch.float32)
        penalty = torch.where(
            longest >= cfg.allowed_length, cfg.multiplier * cfg.base**exponent, 0.0
        )
        return (scores.float() - penalty).to(scores.dtype)
