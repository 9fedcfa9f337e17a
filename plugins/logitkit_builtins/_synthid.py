"""SynthID-Text tournament watermarking, with transformers' hashing and g-values.

A g-value is one pseudo-random bit per (n-gram, key): the n-gram and the key
are folded into an int64 hash by a linear congruential step (wrapping, as in
transformers' ``accumulate_hash``), and the hash indexes a table of random
bits drawn once from ``sampling_table_seed``. Sampling tilts the next-token
distribution toward tokens whose g-values are 1, one key (tournament layer)
at a time. Repeated contexts are left untouched so repeats carry no signal.
"""

from __future__ import annotations

from functools import lru_cache

import torch

LCG_MULTIPLIER = 6364136223846793005
LCG_INCREMENT = 1


@lru_cache(maxsize=4)
def sampling_table(size: int, seed: int) -> torch.Tensor:
    """transformers' table of random bits, drawn on CPU so every device sees the same table."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low=0, high=2, size=(size,), generator=generator)


def accumulate_hash(current: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """Fold the last dimension of ``data`` into ``current`` (broadcastable to ``data.shape[:-1]``)."""
    for i in range(data.shape[-1]):
        current = (current + data[..., i]) * LCG_MULTIPLIER + LCG_INCREMENT
    return current


def with_keys(hashes: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """``[..., depth]``: each hash extended by each watermarking key."""
    return (hashes.unsqueeze(-1) + keys) * LCG_MULTIPLIER + LCG_INCREMENT


def g_values_from_hashes(hashes: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    return table[hashes % table.shape[0]]


def context_hashes(contexts: torch.Tensor) -> torch.Tensor:
    """One hash per context ``[..., ngram_len - 1]``, starting from 1 as transformers does."""
    return accumulate_hash(
        torch.ones(contexts.shape[:-1], dtype=torch.int64, device=contexts.device), contexts
    )


def candidate_g_values(
    context_hash: torch.Tensor, vocab_size: int, keys: torch.Tensor, table: torch.Tensor
) -> torch.Tensor:
    """``[batch, vocab, depth]`` g-values of every next token after each row's context."""
    candidates = torch.arange(vocab_size, device=context_hash.device)
    hashes = (context_hash.unsqueeze(-1) + candidates) * LCG_MULTIPLIER + LCG_INCREMENT
    return g_values_from_hashes(with_keys(hashes, keys), table)


def tournament(scores: torch.Tensor, g_values: torch.Tensor) -> torch.Tensor:
    """transformers' ``update_scores``: tilt softmax(scores) layer by layer, return log-probabilities."""
    probs = torch.softmax(scores, dim=1)
    for depth in range(g_values.shape[-1]):
        g = g_values[:, :, depth]
        g_mass = (g * probs).sum(dim=1, keepdim=True)
        probs = probs * (1 + g - g_mass)
    log_probs = torch.log(probs)
    return torch.where(torch.isfinite(log_probs), log_probs, torch.finfo(log_probs.dtype).min)


def generation_contexts(generated: torch.Tensor, ngram_len: int) -> torch.Tensor:
    """``[batch, steps + 1, ngram_len - 1]``: the context transformers' state holds at each call.

    Its state starts as zeros and takes one generated token per call, so the
    context at call ``c`` is the last ``ngram_len - 1`` of ``zeros ++ generated[:c - 1]``.
    """
    pad = torch.zeros(
        (generated.shape[0], ngram_len - 1), dtype=torch.int64, device=generated.device
    )
    padded = torch.cat([pad, generated.to(torch.int64)], dim=1)
    return padded.unfold(dimension=1, size=ngram_len - 1, step=1)


def repeated_in_history(
    hashes: torch.Tensor, history_size: int, first_tracked: int = 0
) -> torch.Tensor:
    """``[B, P]``: whether each context hash is among the ``history_size`` tracked hashes before it.

    Positions from ``first_tracked`` on enter the history (transformers skips
    the update on the calls ``skip_first_ngram_calls`` skips). Like
    transformers' state, the history starts full of zeros.
    """
    positions = hashes.shape[-1]
    index = torch.arange(positions, device=hashes.device)
    tracked = (index >= first_tracked).long()
    before = torch.cumsum(tracked, dim=0) - tracked  # tracked positions strictly before each one
    # Position j is in i's history when it is tracked, earlier, and among the last history_size such.
    window = (index.unsqueeze(0) < index.unsqueeze(1)) & tracked.bool().unsqueeze(0)
    window &= (before.unsqueeze(1) - before.unsqueeze(0)) <= history_size
    same = hashes.unsqueeze(2) == hashes.unsqueeze(1)
    seen = (same & window).any(dim=-1)
    return seen | ((before < history_size) & (hashes == 0))


def last_repeated(hashes: torch.Tensor, history_size: int, first_tracked: int = 0) -> torch.Tensor:
    """``[B]``: ``repeated_in_history`` for the last position only (what one decoding step needs)."""
    current = hashes.shape[-1] - 1
    tracked = hashes[:, first_tracked:current] if first_tracked < current else hashes[:, :0]
    history = tracked[:, max(0, tracked.shape[-1] - history_size) :]
    seen = (history == hashes[:, current:]).any(dim=-1)
    return seen | ((tracked.shape[-1] < history_size) & (hashes[:, current] == 0))
