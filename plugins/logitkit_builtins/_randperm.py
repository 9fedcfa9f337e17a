"""The head of ``torch.randperm(n, generator=torch.Generator().manual_seed(s))``, for many seeds at once.

transformers' green-list watermark seeds a CPU ``torch.Generator`` per row and
calls ``randperm``. Reproducing that with one tensor program per batch needs
two pieces, both written here with int64 tensors:

* MT19937, the engine behind a CPU generator. ``manual_seed`` keeps the low 32
  bits of the seed; each ``random()`` is one tempered 32-bit output.
* The forward Fisher-Yates shuffle torch uses for ``n < 2**32 / 20``:
  ``for i in range(n - 1): swap(r[i], r[i + random() % (n - i)])``.
  Position ``i`` is final after step ``i``, so the first ``k`` entries need only
  ``k`` draws. Which value lands at ``i`` is resolved without replaying the
  swaps: it is the value that sat at the swap target ``j_i`` just before step
  ``i``, found by following "who last moved a value into this position"
  links, which pointer doubling resolves in ``log2(k)`` gathers.
"""

from __future__ import annotations

import numpy as np
import torch

_N = 624
_M = 397
_MASK32 = 0xFFFFFFFF
_UPPER = 0x80000000
_LOWER = 0x7FFFFFFF
_MATRIX_A = 0x9908B0DF
#: torch switches to 64-bit draws at this size; green lists never get near it.
MAX_N = _MASK32 // 20


def _seeded_states(seeds: torch.Tensor) -> torch.Tensor:
    """MT19937 state words ``[rows, 624]`` after ``manual_seed``; only the low 32 bits of a seed count.

    The 623-step recurrence runs in numpy uint32 (wrapping is the arithmetic we
    want, and small numpy ops cost a fraction of a torch dispatch); the words
    then move to the seeds' device.
    """
    words = np.empty((_N, seeds.shape[0]), dtype=np.uint32)
    words[0] = (seeds.detach().cpu().numpy().astype(np.int64) & _MASK32).astype(np.uint32)
    factor = np.uint32(1812433253)
    scratch = np.empty_like(words[0])
    with np.errstate(over="ignore"):
        for j in range(1, _N):
            np.right_shift(words[j - 1], 30, out=scratch)
            np.bitwise_xor(words[j - 1], scratch, out=scratch)
            np.multiply(scratch, factor, out=scratch)
            np.add(scratch, np.uint32(j), out=words[j])
    return torch.from_numpy(words.T.astype(np.int64)).to(seeds.device)


def _twist(state: torch.Tensor) -> torch.Tensor:
    """One MT19937 regeneration of all 624 words, in four spans.

    Word ``i`` reads words ``i + 1`` and ``i + 397`` (mod 624); the spans are cut
    so that every word a span reads is already in its final (old or new) form.
    """
    new = torch.empty_like(state)
    half = _N - _M  # 227

    def span(dst: slice, cur: torch.Tensor, nxt: torch.Tensor, far: torch.Tensor) -> None:
        y = (cur & _UPPER) | (nxt & _LOWER)
        new[:, dst] = far ^ (y >> 1) ^ ((y & 1) * _MATRIX_A)

    span(slice(0, half), state[:, 0:half], state[:, 1 : half + 1], state[:, _M:_N])
    span(
        slice(half, 2 * half),
        state[:, half : 2 * half],
        state[:, half + 1 : 2 * half + 1],
        new[:, 0:half],
    )
    span(
        slice(2 * half, _N - 1),
        state[:, 2 * half : _N - 1],
        state[:, 2 * half + 1 : _N],
        new[:, half : _M - 1],
    )
    span(slice(_N - 1, _N), state[:, _N - 1 : _N], new[:, 0:1], new[:, _M - 1 : _M])
    return new


def _temper(y: torch.Tensor) -> torch.Tensor:
    y = y ^ (y >> 11)
    y = y ^ ((y << 7) & 0x9D2C5680)
    y = y ^ ((y << 15) & 0xEFC60000)
    return (y ^ (y >> 18)) & _MASK32


def mt19937_draws(seeds: torch.Tensor, count: int) -> torch.Tensor:
    """The first ``count`` 32-bit outputs of MT19937 for each seed: ``[rows, count]`` int64."""
    state = _seeded_states(seeds)
    blocks = []
    for _ in range(-(-count // _N)):
        state = _twist(state)
        blocks.append(_temper(state))
    return torch.cat(blocks, dim=-1)[:, :count] if blocks else state[:, :0]


def _root(parent: torch.Tensor) -> torch.Tensor:
    """For each node, the last node on its ``parent`` chain (``-1`` ends a chain), by pointer doubling."""
    nodes = torch.arange(parent.shape[-1], device=parent.device).expand_as(parent)
    pointer = torch.where(parent >= 0, parent, nodes)  # a chain's end points at itself
    while True:
        jumped = torch.gather(pointer, -1, pointer)
        if torch.equal(jumped, pointer):
            return pointer
        pointer = jumped


def randperm_head(seeds: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """``torch.randperm(n, generator=Generator().manual_seed(seed))[:k]`` for each seed: ``[rows, k]`` int64.

    ``seeds`` are int64; as in ``manual_seed``, only their low 32 bits matter.
    """
    if not 0 <= k <= n or n > MAX_N:
        raise ValueError(f"need 0 <= k <= n <= {MAX_N}, got k={k}, n={n}")
    drawn = min(k, n - 1)  # randperm draws n - 1 times; its last entry is the value left over
    head = _shuffled_head(seeds, n, drawn)
    if drawn < k:
        present = torch.zeros((head.shape[0], n), dtype=torch.bool, device=head.device)
        present.scatter_(-1, head, True)
        head = torch.cat([head, (~present).int().argmax(dim=-1, keepdim=True)], dim=-1)
    return head


def _shuffled_head(seeds: torch.Tensor, n: int, k: int) -> torch.Tensor:
    rows = seeds.shape[0]
    steps = torch.arange(k, device=seeds.device)
    draws = mt19937_draws(seeds, k).to(seeds.device)
    target = steps + draws % (n - steps)  # j_i: the position swapped with i at step i
    # previous_same_target[i]: the last earlier step that also swapped into j_i (it left a value there).
    order = torch.sort(target * max(k, 1) + steps, dim=-1).indices
    sorted_target = torch.gather(target, -1, order)
    same = torch.zeros_like(target, dtype=torch.bool)
    same[:, 1:] = sorted_target[:, 1:] == sorted_target[:, :-1]
    prev_sorted = torch.where(same, torch.roll(order, 1, dims=-1), -1)
    previous_same_target = torch.full_like(target, -1).scatter(-1, order, prev_sorted)
    # moved_into[p]: the last step (other than p itself) that swapped a value into position p < k.
    into = torch.where((target < k) & (target != steps), target, k)
    moved_into = torch.full((rows, k + 1), -1, dtype=torch.int64, device=seeds.device)
    moved_into = moved_into.scatter_reduce(-1, into, steps.expand_as(target), reduce="amax")[:, :k]
    # Position p held p until step moved_into[p] brought in what position moved_into[p] held, and so on.
    origin = _root(moved_into)
    found = torch.gather(origin, -1, previous_same_target.clamp(min=0))
    return torch.where(previous_same_target >= 0, found, target)
