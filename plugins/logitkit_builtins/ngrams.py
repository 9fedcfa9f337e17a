"""N-gram blocking: forbid the token that would repeat an n-gram of the sequence or of the encoder input.

Both processors compare the last n-1 tokens of every row against every
window of length n at once (``unfold`` plus one comparison), then write -inf
on the matching windows' last tokens with one scatter: no Python loop over
rows or n-grams, no vocab-sized mask.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field

from logitkit import Processor, ProcessorConfig, Stage, StepContext
from logitkit_builtins._tokens import ban_tokens, encoder_ids


def ban_by_windows(scores: torch.Tensor, source: torch.Tensor, history: torch.Tensor, size: int) -> torch.Tensor:
    """``scores`` with -inf on every token that would complete an n-gram of ``source`` ending ``history``.

    ``source`` holds the n-grams (``[rows, length]``); the last ``size - 1``
    tokens of ``history`` are the prefix the next token would extend.
    """
    windows = source.unfold(1, size, 1)  # [rows, n_windows, size], a view
    prefix = history[:, history.shape[1] - (size - 1) :]
    hit = (windows[..., :-1] == prefix.unsqueeze(1)).all(dim=-1)
    return ban_tokens(scores, windows[..., -1], hit)


class NoRepeatNGramConfig(ProcessorConfig):
    ngram_size: int = Field(
        default=3, ge=1, description="No n-gram of this many tokens may occur twice."
    )


class NoRepeatNGram(Processor):
    """Ban every token that would make an n-gram of the sequence occur a second time."""

    name = "no_repeat_ngram_size"
    stage = Stage.LOGITS
    priority = 40
    Config = NoRepeatNGramConfig
    primary = "ngram_size"
    needs = frozenset({"input_ids"})

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        ids, size = ctx.input_ids, self.config.ngram_size
        if ids.shape[1] < size:
            return scores  # no complete n-gram yet
        # The window that starts at the prefix is one token short, so a prefix never bans its own successor.
        return ban_by_windows(scores, ids, ids, size)


class EncoderNoRepeatNGramConfig(ProcessorConfig):
    ngram_size: int = Field(
        default=3,
        ge=1,
        description="No n-gram of the encoder input (or prompt) of this size may be generated.",
    )


class EncoderNoRepeatNGram(Processor):
    """Ban every token that would copy an n-gram of the encoder input (or the prompt) into the output."""

    name = "encoder_no_repeat_ngram_size"
    stage = Stage.LOGITS
    priority = 50
    Config = EncoderNoRepeatNGramConfig
    primary = "ngram_size"
    needs = frozenset({"input_ids", "encoder_input_ids"})

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        size = self.config.ngram_size
        source = encoder_ids(ctx, scores.shape[0])
        if ctx.input_ids.shape[1] < size - 1 or source.shape[1] < size:
            return scores  # no prefix long enough, or no n-gram in the source
        return ban_by_windows(scores, source.to(ctx.input_ids.device), ctx.input_ids, size)


def register_processors(register: Callable[..., None]) -> None:
    register(NoRepeatNGram)
    register(EncoderNoRepeatNGram)
