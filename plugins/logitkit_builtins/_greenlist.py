"""Green lists of the Kirchenbauer et al. watermark, bit-identical to transformers' on CPU.

transformers seeds a CPU ``torch.Generator`` per row and takes the first
``int(vocab * ratio)`` entries of ``randperm(vocab)``. ``_randperm`` computes
those permutation heads for many seeds in one tensor program, so nothing here
loops over rows.

Seeds follow transformers' ``WatermarkLogitsProcessor.set_seed``:

* lefthash: ``hashing_key * previous_token``;
* selfhash: ``min(hashing_key * (T[w] + 1) * (T[candidate] + 1))`` over the
  window ``w`` of the last ``context_width`` tokens ending with the candidate,
  where ``T`` is a fixed permutation of ``range(1_000_003)`` drawn from
  ``hashing_key`` (int64 products wrap, as in transformers).

``manual_seed(seed % (2**64 - 1))`` keeps the low 32 bits of the reduced seed.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from logitkit_builtins._randperm import randperm_head

TABLE_SIZE = 1_000_003
#: transformers' selfhash tries the 40 highest-scoring candidates per row.
SELFHASH_CANDIDATES = 40
_MASK32 = 0xFFFFFFFF
#: Bound on the booleans built at once when marking green lists (memory, not results).
_CHUNK_ELEMENTS = 1 << 24


@lru_cache(maxsize=4)
def fixed_table(hashing_key: int) -> torch.Tensor:
    """transformers' ``fixed_table``: one permutation of ``range(1_000_003)`` drawn from the key."""
    generator = torch.Generator().manual_seed(hashing_key)
    return torch.randperm(TABLE_SIZE, generator=generator)


def _low32_of_reduced(seed: torch.Tensor) -> torch.Tensor:
    # Python's ``seed % (2**64 - 1)`` on a signed int64 adds 2**64 - 1 to negatives: low word minus one.
    return torch.where(seed < 0, seed - 1, seed) & _MASK32


def lefthash_seeds(previous: torch.Tensor, hashing_key: int) -> torch.Tensor:
    """Seeds from the previous token; ``hashing_key < 2**32`` keeps the product exact in int64."""
    return _low32_of_reduced(previous.to(torch.int64) * hashing_key)


def selfhash_seeds(windows: torch.Tensor, hashing_key: int) -> torch.Tensor:
    """Seeds from windows ``[..., context_width]`` whose last token is the candidate."""
    table = fixed_table(hashing_key).to(windows.device)
    a = table[windows % TABLE_SIZE] + 1
    b = table[windows[..., -1:] % TABLE_SIZE] + 1
    return _low32_of_reduced((hashing_key * a * b).amin(dim=-1))


def green_size(vocab_size: int, ratio: float) -> int:
    return int(vocab_size * ratio)


def green_mask(
    seeds: torch.Tensor, vocab_size: int, ratio: float, cache: GreenListCache | None = None
) -> torch.Tensor:
    """``[*seeds.shape, vocab]`` booleans: True where the token is green under that seed."""
    if cache is not None:
        return cache.masks(seeds, vocab_size, ratio)
    flat = seeds.reshape(-1)
    k = green_size(vocab_size, ratio)
    rows = max(1, _CHUNK_ELEMENTS // max(k, vocab_size, 1))
    parts = []
    # Chunks only bound memory; each chunk is one tensor program over its rows.
    for start in range(0, flat.shape[0], rows):
        head = randperm_head(flat[start : start + rows], vocab_size, k)
        mask = torch.zeros((head.shape[0], vocab_size), dtype=torch.bool, device=seeds.device)
        parts.append(mask.scatter_(-1, head, True))
    if not parts:
        return torch.zeros((*seeds.shape, vocab_size), dtype=torch.bool, device=seeds.device)
    return torch.cat(parts).reshape(*seeds.shape, vocab_size)


class GreenListCache:
    """Green lists of recently seen seeds, looked up for a whole batch at once.

    Seeds repeat (lefthash seeds come from the previous token alone), and a
    green list is a pure function of (seed, vocab, ratio), so a hit gives the
    same mask a fresh computation would. Capped at ``max_bytes`` of masks;
    when full it keeps only the last step's seeds.
    """

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        # (key, sorted seeds, their masks), read once and replaced whole: a pipeline shared by
        # threads never sees the seeds of one table beside the masks of another.
        empty = (torch.empty(0, dtype=torch.int64), torch.empty((0, 0), dtype=torch.bool))
        self._table: tuple[tuple[int, float, torch.device] | None, torch.Tensor, torch.Tensor] = (None, *empty)

    def masks(self, seeds: torch.Tensor, vocab_size: int, ratio: float) -> torch.Tensor:
        key = (vocab_size, ratio, seeds.device)
        held_key, known, known_masks = self._table
        if key != held_key:
            known = torch.empty(0, dtype=torch.int64, device=seeds.device)
            known_masks = torch.empty((0, vocab_size), dtype=torch.bool, device=seeds.device)
        unique, inverse = torch.unique(seeds.reshape(-1), return_inverse=True)
        slot = torch.searchsorted(known, unique).clamp(max=max(known.shape[0] - 1, 0))
        hit = known[slot] == unique if known.shape[0] else torch.zeros_like(unique, dtype=torch.bool)
        found = torch.empty((unique.shape[0], vocab_size), dtype=torch.bool, device=seeds.device)
        found[hit] = known_masks[slot[hit]]
        missing = ~hit
        if bool(missing.any()):
            found[missing] = green_mask(unique[missing], vocab_size, ratio)
            self._table = (key, *self._merged(known, known_masks, unique[missing], found[missing], unique, found))
        return found[inverse].reshape(*seeds.shape, vocab_size)

    def _merged(
        self,
        known: torch.Tensor,
        known_masks: torch.Tensor,
        new_seeds: torch.Tensor,
        new_masks: torch.Tensor,
        step_seeds: torch.Tensor,
        step_masks: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        capacity = self.max_bytes // max(new_masks.shape[-1], 1)
        seeds = torch.cat([known, new_seeds])
        masks = torch.cat([known_masks, new_masks])
        if seeds.shape[0] > capacity:
            seeds, masks = step_seeds[:capacity], step_masks[:capacity]
        order = torch.argsort(seeds)
        return seeds[order], masks[order]


def is_green(
    seeds: torch.Tensor,
    tokens: torch.Tensor,
    vocab_size: int,
    ratio: float,
    cache: GreenListCache | None = None,
) -> torch.Tensor:
    """Whether each token is green under the seed beside it (same shapes), one green list per distinct seed."""
    unique, inverse = torch.unique(seeds.reshape(-1), return_inverse=True)
    masks = green_mask(unique, vocab_size, ratio, cache)
    flat_tokens = tokens.reshape(-1).to(torch.int64)
    in_vocab = (flat_tokens >= 0) & (flat_tokens < vocab_size)
    hits = masks[inverse, flat_tokens.clamp(0, max(vocab_size - 1, 0))] & in_vocab
    return hits.reshape(tokens.shape)


def lefthash_mask(
    input_ids: torch.Tensor,
    vocab_size: int,
    ratio: float,
    hashing_key: int,
    cache: GreenListCache | None = None,
) -> torch.Tensor:
    """``[batch, vocab]``: the green list for each row's next token."""
    return green_mask(lefthash_seeds(input_ids[:, -1], hashing_key), vocab_size, ratio, cache)


def selfhash_mask(
    input_ids: torch.Tensor,
    scores: torch.Tensor,
    vocab_size: int,
    ratio: float,
    hashing_key: int,
    context_width: int,
    cache: GreenListCache | None = None,
) -> torch.Tensor:
    """``[batch, vocab]``: the top candidates that are green under a seed that includes themselves."""
    count = min(SELFHASH_CANDIDATES, scores.shape[-1])
    candidates = scores.sort(dim=-1, descending=True).indices[:, :count]
    left = (
        input_ids[:, input_ids.shape[-1] - (context_width - 1) :]
        if context_width > 1
        else input_ids[:, :0]
    )
    windows = torch.cat([left.unsqueeze(1).expand(-1, count, -1), candidates.unsqueeze(-1)], dim=-1)
    green = is_green(selfhash_seeds(windows, hashing_key), candidates, vocab_size, ratio, cache)
    mask = torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    return mask.scatter_(-1, candidates, green)


def scored_positions(
    ids: torch.Tensor, seeding_scheme: str, context_width: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The n-grams transformers' detector scores: ``(windows [B, P, n], targets [B, P])``.

    lefthash scores each token after the first ``context_width``, seeded by the
    token before it; selfhash scores each token from the ``context_width``-th on,
    seeded by the window that ends with it.
    """
    n = context_width + (0 if seeding_scheme == "selfhash" else 1)
    windows = ids.unfold(dimension=1, size=n, step=1)
    return windows, windows[..., -1]


def detection_counts(
    ids: torch.Tensor,
    *,
    vocab_size: int,
    ratio: float,
    hashing_key: int,
    seeding_scheme: str,
    context_width: int,
    ignore_repeated_ngrams: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scored, green)`` per row, as transformers' ``WatermarkDetector`` counts them."""
    windows, targets = scored_positions(ids, seeding_scheme, context_width)
    if seeding_scheme == "selfhash":
        seeds = selfhash_seeds(windows, hashing_key)
    else:
        seeds = lefthash_seeds(windows[..., -2], hashing_key)
    green = is_green(seeds, targets, vocab_size, ratio)
    if not ignore_repeated_ngrams:
        return torch.full((ids.shape[0],), targets.shape[-1], dtype=torch.int64), green.sum(dim=-1)
    first = first_occurrences(windows)
    return first.sum(dim=-1), (green & first).sum(dim=-1)


def first_occurrences(windows: torch.Tensor) -> torch.Tensor:
    """``[B, P]``: True at the first occurrence of each distinct n-gram of its row."""
    batch, positions, _ = windows.shape
    if positions == 0:
        return torch.zeros((batch, 0), dtype=torch.bool, device=windows.device)
    order = torch.arange(positions, device=windows.device).expand(batch, -1)
    for column in reversed(
        range(windows.shape[-1])
    ):  # least significant column first: a radix sort
        keys = torch.gather(windows[..., column], -1, order)
        order = torch.gather(order, -1, torch.sort(keys, dim=-1, stable=True).indices)
    ordered = torch.gather(windows, 1, order.unsqueeze(-1).expand_as(windows))
    new = torch.ones((batch, positions), dtype=torch.bool, device=windows.device)
    new[:, 1:] = (ordered[:, 1:] != ordered[:, :-1]).any(dim=-1)
    return torch.zeros_like(new).scatter(-1, order, new)
