"""The dense constraint mask (``masked_scores``) against a plain unpack-and-where reference."""

from __future__ import annotations

import pytest
import torch

from logitkit_builtins._llguidance import masked_scores


def reference(scores: torch.Tensor, bitmask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    rows, width = scores.shape
    bits = ((bitmask.unsqueeze(-1) >> torch.arange(32, dtype=torch.int32)) & 1).reshape(rows, -1).bool()
    allowed = torch.zeros(rows, width, dtype=torch.bool)
    own = min(bits.shape[1], width)
    allowed[:, :own] = bits[:, :own]
    out = torch.where(allowed, scores, float("-inf"))
    return out, ~((out > float("-inf")) | out.isnan()).any(dim=-1)


@pytest.mark.parametrize("density", [0.0, 0.01, 0.5, 0.99, 1.0])
@pytest.mark.parametrize(("width", "tokens"), [(4096, 4096), (600, 4096), (5000, 4096), (4100, 4100)])
def test_both_sides_of_the_mask_match_the_reference(density: float, width: int, tokens: int) -> None:
    gen = torch.Generator().manual_seed(int(density * 100) + width)
    words = (tokens + 31) // 32
    allowed = torch.rand(6, words * 32, generator=gen) < density
    allowed[:, tokens:] = False  # llguidance never sets bits past its vocabulary
    weights = 1 << torch.arange(32, dtype=torch.int64)
    bitmask = (allowed.view(6, words, 32).to(torch.int64) * weights).sum(-1)
    bitmask = torch.where(bitmask >= 2**31, bitmask - 2**32, bitmask).to(torch.int32)
    scores = torch.randn(6, width, generator=gen)
    scores[1] = float("-inf")  # emptied by an earlier processor
    scores[2, ::3] = float("-inf")
    scores[3, 7] = float("nan")
    scores[4, 11] = float("inf")
    before = scores.clone()
    got, empty = masked_scores(scores, bitmask)
    want, want_empty = reference(scores, bitmask)
    assert torch.equal(got.nan_to_num(), want.nan_to_num()) and torch.equal(got.isnan(), want.isnan())
    assert torch.equal(empty, want_empty)
    assert torch.equal(scores.nan_to_num(), before.nan_to_num())  # out of place: the input is as it was
