"""Differential tests: every truncation processor beside transformers' own warper, same inputs.

logitkit decides on a sorted view in float64; transformers works in the
scores' dtype. The -inf masks must match token for token, except a token
whose deciding statistic lies within the rounding error of transformers'
arithmetic from the threshold (transformers' own choice there is a coin
flip of its rounding). The tests bound that error by dtype and check that
such tokens are rare. Kept scores are the input scores, bit for bit.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers.generation.logits_process import (
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    MinPLogitsWarper,
    TopHLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

from logitkit import Pipeline

#: (batch, vocab, dtype, logit scale): small and odd shapes, half dtypes, one Qwen-sized case.
CASES = [
    (1, 50, torch.float32, 1.0),
    (3, 1000, torch.float32, 4.0),
    (16, 257, torch.float32, 2.0),
    (5, 32000, torch.float16, 4.0),
    (4, 5000, torch.bfloat16, 3.0),
]
#: The Qwen-sized case runs for the processors whose arithmetic grows with the vocabulary.
BIG = (8, 151936, torch.float32, 4.0)
#: How far from its threshold a statistic may be and still be decided differently
#: (fp32: a softmax over 152k tokens sums its normaliser in fp32, ~1e-5 relative).
TOLERANCE = {torch.float32: 5e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}


def logits(batch: int, vocab: int, dtype: torch.dtype, scale: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, vocab, generator=gen) * scale).to(dtype)


def removed(scores: torch.Tensor) -> torch.Tensor:
    return scores == float("-inf")


def canonical_stats(scores: torch.Tensor) -> dict[str, torch.Tensor]:
    """Exact float64 statistics per token, in vocabulary order."""
    x = scores.to(torch.float64)
    logp = x - torch.logsumexp(x, dim=-1, keepdim=True)
    p = logp.exp()
    _, order = torch.sort(x, dim=-1, stable=True)
    desc_order = order.flip(-1)
    p_sorted = p.gather(-1, desc_order)
    above_sorted = p_sorted.cumsum(-1) - p_sorted
    above = torch.empty_like(p).scatter_(-1, desc_order, above_sorted)
    ent = -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(-1, keepdim=True)
    return {"x": x, "logp": logp, "p": p, "above": above, "entropy": ent}


def margins(name: str, value: float, scores: torch.Tensor) -> torch.Tensor:
    """Per token: the signed distance of its deciding statistic from the threshold."""
    s = canonical_stats(scores)
    if name == "top_p":
        return s["above"] - value
    if name == "min_p":
        return (s["x"] - s["x"].amax(-1, keepdim=True)) - math.log(value)
    if name == "epsilon_cutoff":
        return s["logp"] - math.log(value)
    if name == "eta_cutoff":
        eta = torch.clamp(math.sqrt(value) * torch.exp(-s["entropy"]), max=value)
        # transformers' entropy carries the dtype's relative error, so scale by it.
        return (s["logp"] - eta.log()) / (1 + s["entropy"])
    if name == "typical_p":
        distance = (-s["logp"] - s["entropy"]).abs()
        closest, order = torch.sort(distance, dim=-1, stable=True)
        before = s["p"].gather(-1, order).cumsum(-1) - s["p"].gather(-1, order)
        cut = (before < value).sum(-1, keepdim=True).clamp(max=distance.shape[-1] - 1)
        limit = closest.gather(-1, cut)
        mass = torch.empty_like(before).scatter_(-1, order, before) - value
        # The distance carries rounding relative to |log p| and the entropy.
        spread = (distance - limit).abs() / (1 + s["logp"].abs().clamp(max=1e3) + s["entropy"])
        return torch.minimum(mass.abs(), spread)
    if name == "top_h":
        top, idx = torch.topk(s["x"], min(100, scores.shape[-1]), dim=-1)
        logq = top - torch.logsumexp(top, -1, keepdim=True)
        q = logq.exp()
        terms = -q * logq
        tau = terms.sum(-1, keepdim=True) * value
        out = torch.full_like(s["x"], float("inf"))
        return out.scatter(-1, idx, (terms.cumsum(-1) - tau) / (1 + tau))
    raise AssertionError(name)


def tie_swaps(scores: torch.Tensor, ours: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
    """Tokens kept by one side only whose equal-scored twin is kept by the other side only.

    Among tied scores the choice is arbitrary (transformers' half-precision
    sorts are not stable), so swapping equal scores is not a difference.
    """
    swapped = torch.zeros_like(scores, dtype=torch.bool)
    only_ours = ~removed(ours) & removed(theirs)
    only_theirs = removed(ours) & ~removed(theirs)
    for row in range(scores.shape[0]):
        mine = only_ours[row].nonzero().flatten().tolist()
        other = only_theirs[row].nonzero().flatten().tolist()
        for i in mine:
            twin = next((j for j in other if scores[row, j] == scores[row, i]), None)
            if twin is not None:
                other.remove(twin)
                swapped[row, i] = swapped[row, twin] = True
    return swapped


def assert_matches(
    name: str, value: float, scores: torch.Tensor, ours: torch.Tensor, theirs: torch.Tensor
) -> None:
    assert ours.shape == scores.shape and ours.dtype == scores.dtype
    differ = (removed(ours) != removed(theirs)) & ~tie_swaps(scores, ours, theirs)
    if bool(differ.any()):
        margin = margins(name, value, scores)[differ].abs()
        tol = TOLERANCE[scores.dtype]
        assert bool((margin <= tol).all()), (
            f"{name}: masks differ away from the threshold: {margin.max()}"
        )
        # Boundary tokens only: a handful per row at most.
        assert int(differ.sum()) <= 3 * scores.shape[0] + scores.shape[-1] // 1000 * scores.shape[0]
    both = ~removed(ours) & ~removed(theirs)
    assert torch.equal(ours[both], scores[both]) and torch.equal(theirs[both], scores[both])


def run_ours(config: dict, scores: torch.Tensor) -> torch.Tensor:
    pipe = Pipeline.from_config([config])
    ids = torch.zeros(scores.shape[0], 1, dtype=torch.long)
    return pipe(ids, scores)


WARPERS = [
    ({"top_k": 1}, lambda: TopKLogitsWarper(1)),
    ({"top_k": 50}, lambda: TopKLogitsWarper(50)),
    (
        {"name": "top_k", "top_k": 3, "min_tokens_to_keep": 7},
        lambda: TopKLogitsWarper(3, min_tokens_to_keep=7),
    ),
    ({"top_p": 0.9}, lambda: TopPLogitsWarper(0.9)),
    (
        {"name": "top_p", "top_p": 0.3, "min_tokens_to_keep": 5},
        lambda: TopPLogitsWarper(0.3, min_tokens_to_keep=5),
    ),
    ({"min_p": 0.05}, lambda: MinPLogitsWarper(0.05)),
    (
        {"name": "min_p", "min_p": 0.2, "min_tokens_to_keep": 4},
        lambda: MinPLogitsWarper(0.2, min_tokens_to_keep=4),
    ),
    ({"typical_p": 0.9}, lambda: TypicalLogitsWarper(0.9)),
    (
        {"name": "typical_p", "typical_p": 0.4, "min_tokens_to_keep": 3},
        lambda: TypicalLogitsWarper(0.4, min_tokens_to_keep=3),
    ),
    ({"epsilon_cutoff": 3e-4}, lambda: EpsilonLogitsWarper(3e-4)),
    (
        {"name": "epsilon_cutoff", "epsilon_cutoff": 0.02, "min_tokens_to_keep": 2},
        lambda: EpsilonLogitsWarper(0.02, min_tokens_to_keep=2),
    ),
    ({"eta_cutoff": 3e-4}, lambda: EtaLogitsWarper(3e-4)),
    (
        {"name": "eta_cutoff", "eta_cutoff": 0.004, "min_tokens_to_keep": 3},
        lambda: EtaLogitsWarper(0.004, min_tokens_to_keep=3),
    ),
    ({"top_h": 0.4}, lambda: TopHLogitsWarper(0.4)),
    ({"top_h": 1.0}, lambda: TopHLogitsWarper(1.0)),
]


def config_name(config: dict) -> str:
    return str(config.get("name") or next(iter(config)))


def config_value(config: dict) -> float:
    name = config_name(config)
    return float(config[name])


@pytest.mark.parametrize("config,make", WARPERS, ids=[str(c) for c, _ in WARPERS])
@pytest.mark.parametrize(
    "batch,vocab,dtype,scale", CASES, ids=[f"{b}x{v}-{str(d)[6:]}" for b, v, d, _ in CASES]
)
def test_matches_transformers(reg, config, make, batch, vocab, dtype, scale) -> None:  # type: ignore[no-untyped-def]
    scores = logits(batch, vocab, dtype, scale, seed=batch * 7919 + vocab)
    ids = torch.zeros(batch, 1, dtype=torch.long)
    ours = run_ours(config, scores)
    theirs = make()(ids, scores)
    name = config_name(config)
    if name == "top_k":
        assert torch.equal(ours, theirs)
    else:
        assert_matches(name, config_value(config), scores, ours, theirs)


@pytest.mark.parametrize("index", [3, 5, 7, 9, 11, 13], ids=lambda i: str(WARPERS[i][0]))
def test_matches_transformers_at_qwen_vocab(reg, index) -> None:  # type: ignore[no-untyped-def]
    config, make = WARPERS[index]
    batch, vocab, dtype, scale = BIG
    scores = logits(batch, vocab, dtype, scale, seed=batch * 7919 + vocab)
    ours = run_ours(config, scores)
    theirs = make()(torch.zeros(batch, 1, dtype=torch.long), scores)
    assert_matches(config_name(config), config_value(config), scores, ours, theirs)


def test_fp32_masks_are_exact_on_a_spread_of_inputs(reg) -> None:  # type: ignore[no-untyped-def]
    """In fp32 the boundary allowance is not needed on these seeds: masks are identical.

    top_h 1.0 is left out: its last token's entropy equals the threshold
    exactly in real arithmetic, so both sides decide it by rounding.
    """
    for seed in range(3):
        scores = logits(6, 3000, torch.float32, 3.0, seed)
        ids = torch.zeros(6, 1, dtype=torch.long)
        for config, make in WARPERS:
            if config == {"top_h": 1.0}:
                continue
            assert torch.equal(removed(run_ours(config, scores)), removed(make()(ids, scores))), (
                config
            )


def test_off_values_leave_scores_untouched(reg) -> None:  # type: ignore[no-untyped-def]
    scores = logits(2, 300, torch.float32, 2.0, 1)
    for config in (
        {"top_p": 1.0},
        {"min_p": 0.0},
        {"typical_p": 1.0},
        {"epsilon_cutoff": 0.0},
        {"eta_cutoff": 0.0},
    ):
        assert torch.equal(run_ours(config, scores), scores), config


def test_transformers_priority_order(reg) -> None:  # type: ignore[no-untyped-def]
    names = ["eta_cutoff", "epsilon_cutoff", "typical_p", "min_p", "top_p", "top_k", "top_h"]
    pipe = Pipeline.from_config({"order": "stage", "processors": [{"name": n} for n in names]})
    assert [p.name for p in pipe.processors] == names[::-1]
    assert [p.priority for p in pipe.processors] == [10, 20, 30, 40, 50, 60, 70]


@pytest.mark.parametrize("fast_path", [True, False])
def test_top_p_keeps_what_transformers_keeps_on_rows_with_nan(reg, fast_path) -> None:  # type: ignore[no-untyped-def]
    """A NaN cumulative mass is not "<= 1 - p": transformers keeps the token, and so must both paths."""
    scores = torch.randn(3, 50, generator=torch.Generator().manual_seed(3)) * 2
    scores[0, 5] = float("nan")
    scores[1, :] = float("nan")
    ids = torch.zeros(3, 1, dtype=torch.long)
    theirs = TopPLogitsWarper(0.9)(ids, scores.clone())
    ours = Pipeline.from_config([{"top_p": 0.9}], fast_path=fast_path)(ids, scores)
    assert torch.equal(ours.nan_to_num(nan=7.0), theirs.nan_to_num(nan=7.0))
