"""Repetition penalties: push down (or up) tokens already seen in the sequence or the encoder input."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field, NonNegativeInt

from logitkit import Processor, ProcessorConfig, Stage, StepContext
from logitkit.fastpath import SparseEdit
from logitkit_builtins._tokens import encoder_ids, written
from logitkit_builtins.numerics import safe_log_softmax


def _penalize(scores: torch.Tensor, ids: torch.Tensor, penalty: float) -> torch.Tensor:
    """Divide positive scores of ``ids`` by ``penalty`` and multiply negative ones, once per token."""
    return written(scores, *_penalty_edit(scores, ids, penalty))


def _penalty_edit(
    scores: torch.Tensor, ids: torch.Tensor, penalty: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ids, values)``: the penalized score of each token of ``ids``, to be written at it.

    ``ids`` equal to the vocab size are ignored positions or out-of-vocab ids.
    They borrow a real id of their row, so every write to a token carries the
    same value and one out-of-place write (a copy of the scores)
    does the job, with no host-side filtering.
    """
    vocab = scores.shape[-1]
    valid = (ids >= 0) & (ids < vocab)  # negative ids are padding markers such as -100
    if bool(valid.all()):  # the usual case: no position to fill in
        picked = scores.gather(1, ids)
        return ids, torch.where(picked < 0, picked * penalty, picked / penalty)
    positions = torch.arange(ids.shape[1], device=ids.device)
    last_valid = torch.where(valid, positions, -1).amax(dim=1, keepdim=True)
    has_valid = last_valid >= 0
    borrowed = ids.gather(1, last_valid.clamp(min=0)).clamp(min=0, max=vocab - 1)
    safe = torch.where(valid, ids, borrowed)
    picked = scores.gather(1, safe)
    penalized = torch.where(picked < 0, picked * penalty, picked / penalty)
    # A row with nothing to penalize writes its own scores back.
    return safe, torch.where(has_valid, penalized, picked)


class RepetitionPenaltyConfig(ProcessorConfig):
    penalty: float = Field(default=1.0, gt=0, description="> 1 discourages tokens already in the sequence, < 1 encourages them.")
    prompt_ignore_length: NonNegativeInt = Field(
        default=0, description="Leading positions of every row that are never penalized."
    )
    ignore_padding: bool = Field(
        default=True, description="Skip each row's left padding (read from the attention mask), as generate() does."
    )
    normalize: bool = Field(
        default=False,
        description="Penalize log-probabilities instead of raw logits, so the result no longer depends on the logits' sign.",
    )


class RepetitionPenalty(Processor):
    """Rescale the score of every token already in the sequence (CTRL's repetition penalty)."""

    name = "repetition_penalty"
    stage = Stage.LOGITS
    priority = 30
    Config = RepetitionPenaltyConfig
    primary = "penalty"
    needs = frozenset({"input_ids"})
    mixed_rows = True
    # In a fused run it hands the view its few new scores instead of copying the whole row.
    fused = "edit"

    def fused_usable(self) -> bool:
        return not self.config.normalize  # log-probabilities change every score

    def ignored_positions(self, ctx: StepContext) -> torch.Tensor | None:
        """Bool ``[batch, length]``: positions left out of the penalty, or None when none are."""
        ids = ctx.input_ids
        limit = torch.full((ids.shape[0],), self.config.prompt_ignore_length, device=ids.device)
        if not ctx.aligned:
            # Columns left of a row's own tokens are batch padding; the ignored prompt starts after them.
            limit = limit + (ids.shape[1] - ctx.context_lengths.to(ids.device))
        mask = ctx.attention_mask
        if self.config.ignore_padding and mask is not None:
            # The first attended position is the row's left padding length.
            padding = (mask != 0).int().argmax(dim=1).to(ids.device)
            if padding.shape[0] < ids.shape[0]:
                padding = padding.repeat_interleave(ids.shape[0] // padding.shape[0])
            limit = torch.maximum(limit, padding)
        elif self.config.prompt_ignore_length == 0 and ctx.aligned:
            return None
        positions = torch.arange(ids.shape[1], device=ids.device)
        return positions[None, :] < limit[:, None]

    def sparse_edit(self, scores: torch.Tensor, ctx: StepContext) -> SparseEdit:
        """What ``apply`` writes, as ids and values (``scores`` [batch, vocab])."""
        return SparseEdit(*_penalty_edit(scores, self._penalized_ids(scores, ctx), self.config.penalty))

    def _penalized_ids(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        vocab = scores.shape[-1]
        ids = ctx.input_ids.clamp(max=vocab)
        ignored = self.ignored_positions(ctx)
        return ids if ignored is None else ids.masked_fill(ignored, vocab)

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if scores.dim() == 3:
            # [batch, positions, vocab], as transformers accepts: only the last position is penalized.
            last = self.apply(scores[:, -1, :], ctx)
            return torch.cat([scores[:, :-1, :], last.unsqueeze(1)], dim=1)
        ids = self._penalized_ids(scores, ctx)
        if self.config.normalize:
            # Log-probabilities are all <= 0, so every seen token is treated alike.
            scores = safe_log_softmax(scores)
        return _penalize(scores, ids, self.config.penalty)


class EncoderRepetitionPenaltyConfig(ProcessorConfig):
    penalty: float = Field(default=1.0, gt=0, description="> 1 favours tokens of the encoder input (or prompt), < 1 avoids them.")


class EncoderRepetitionPenalty(Processor):
    """Favour (penalty > 1) or avoid (< 1) tokens that appear in the encoder input or the prompt."""

    name = "encoder_repetition_penalty"
    stage = Stage.LOGITS
    priority = 20
    Config = EncoderRepetitionPenaltyConfig
    primary = "penalty"
    needs = frozenset({"encoder_input_ids"})

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        vocab = scores.shape[-1]
        ids = encoder_ids(ctx, scores.shape[0]).to(scores.device).clamp(max=vocab)
        # The inverse of the repetition penalty: dividing by 1/p rewards the tokens.
        return _penalize(scores, ids, 1 / self.config.penalty)


def register_processors(register: Callable[..., None]) -> None:
    register(EncoderRepetitionPenalty)
    register(RepetitionPenalty)
