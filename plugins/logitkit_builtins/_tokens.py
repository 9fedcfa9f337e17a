"""Helpers shared by the token-level families: id masks, eos lookup, the missing-eos check."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import torch

from logitkit import CheckContext, StepContext, TokenSettings

NEG_INF = float("-inf")

NO_EOS = "needs an eos token id; set 'tokens: {eos: ID}' in the config"


def vocab_mask(ids: Sequence[int], vocab_size: int, device: torch.device) -> torch.Tensor:
    """A bool ``[vocab]`` mask of ``ids``; ids at or past the vocab are dropped (the model cannot emit them)."""
    index = torch.tensor(list(ids), dtype=torch.long, device=device).clamp(max=vocab_size)
    # One spare slot past the vocab absorbs the out-of-range ids without a host-side filter.
    mask = torch.zeros(vocab_size + 1, dtype=torch.bool, device=device)
    mask[index] = True
    return mask[:vocab_size]


def written(scores: torch.Tensor, ids: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``scores.scatter(1, ids, values)`` (a copy): every repeat of an id must carry the same value.

    For fp16 and bf16 a clone and an ``index_put_``: on CPU their out-of-place
    ``scatter`` costs about three softmax passes, the clone and the writes a fifth of
    one (measured); for fp32 ``scatter`` is the cheaper of the two.
    """
    if scores.dtype.itemsize >= 4:
        return scores.scatter(1, ids, values)
    out = scores.clone()
    rows = torch.arange(ids.shape[0], device=ids.device).unsqueeze(-1).expand_as(ids)
    return out.index_put_((rows, ids), values)


def ban_tokens(scores: torch.Tensor, tokens: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
    """``scores`` with ``tokens[r, j]`` set to -inf wherever ``hit[r, j]``, by one out-of-place write.

    No vocab-sized mask is built: misses borrow a hit of their row (writing
    -inf again changes nothing), and a row without hits rewrites its own
    first score, so every write to a token carries the same value.
    """
    vocab = scores.shape[-1]
    hit = hit & (tokens >= 0) & (tokens < vocab)
    any_hit = hit.any(dim=1, keepdim=True)
    borrowed = tokens.gather(1, hit.int().argmax(dim=1, keepdim=True))
    safe = torch.where(any_hit, torch.where(hit, tokens, borrowed), 0)
    fill = torch.where(any_hit, torch.full_like(scores[:, :1], NEG_INF), scores[:, :1])
    return written(scores, safe, fill.expand_as(safe))


class MaskCache:
    """Builds a token mask once per (vocab size, device) instead of at every step."""

    def __init__(self, ids: Iterable[int]) -> None:
        self.ids = tuple(ids)
        self._masks: dict[tuple[int, torch.device], torch.Tensor] = {}

    def get(self, vocab_size: int, device: torch.device) -> torch.Tensor:
        key = (vocab_size, device)
        mask = self._masks.get(key)
        if mask is None:
            mask = self._masks[key] = vocab_mask(self.ids, vocab_size, device)
        return mask


def eos_ids(tokens: TokenSettings) -> list[int]:
    return list(dict.fromkeys(tokens.eos or []))


def encoder_ids(ctx: StepContext, rows: int) -> torch.Tensor:
    """The encoder input ids, one row per hypothesis; the prompt stands in for decoder-only models."""
    ids = ctx.encoder_input_ids
    if ids is None:
        ids = ctx.input_ids[:, : ctx.prompt_length]
    if ids.dim() == 1:
        ids = ids.unsqueeze(0)
    if rows > ids.shape[0]:
        # Beam search and num_return_sequences expand each prompt into consecutive rows.
        ids = ids.repeat_interleave(rows // ids.shape[0], dim=0)
    return ids


def needs_eos(context: CheckContext) -> Iterator[str]:
    if not context.tokens.eos:
        yield NO_EOS
