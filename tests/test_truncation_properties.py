"""Hypothesis properties of the truncation family, on the dense and the fused path alike."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logitkit import Pipeline

NEG_INF = float("-inf")

CONFIGS = [
    {"name": "top_k", "top_k": 3, "min_tokens_to_keep": 2},
    {"name": "top_p", "top_p": 0.6, "min_tokens_to_keep": 2},
    {"name": "min_p", "min_p": 0.3, "min_tokens_to_keep": 2},
    {"name": "typical_p", "typical_p": 0.5, "min_tokens_to_keep": 2},
    {"name": "epsilon_cutoff", "epsilon_cutoff": 0.05, "min_tokens_to_keep": 2},
    {"name": "eta_cutoff", "eta_cutoff": 0.01, "min_tokens_to_keep": 2},
    {"name": "top_h", "top_h": 0.3},
]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@st.composite
def score_rows(draw: st.DrawFn) -> torch.Tensor:
    batch = draw(st.integers(1, 5))
    vocab = draw(st.integers(2, 300))
    kind = draw(st.sampled_from(["normal", "ties", "flat", "peaked", "sparse"]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    x = torch.randn(batch, vocab, generator=gen) * draw(st.sampled_from([0.1, 1.0, 5.0]))
    if kind == "ties":
        x = x.round()
    elif kind == "flat":
        x = torch.zeros(batch, vocab)
    elif kind == "peaked":
        x[:, 0] += 40
    elif kind == "sparse":
        x = x.masked_fill(torch.rand(batch, vocab, generator=gen) < 0.8, NEG_INF)
        x[:, 1] = 0.0  # every row keeps at least two finite tokens
    return x.to(draw(st.sampled_from(DTYPES)))


def run(config: dict, scores: torch.Tensor, fast: bool) -> torch.Tensor:
    pipe = Pipeline.from_config([config], fast_path=fast)
    return pipe(torch.zeros(scores.shape[0], 1, dtype=torch.long), scores)


@pytest.mark.parametrize("config", CONFIGS, ids=[c["name"] for c in CONFIGS])
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scores=score_rows(), fast=st.booleans())
def test_truncation_properties(reg, cpu_path, config, scores, fast) -> None:  # type: ignore[no-untyped-def]
    before = scores.clone()
    out = run(config, scores, fast)
    # Never mutates its input; same shape and dtype.
    assert torch.equal(scores, before)
    assert out.shape == scores.shape and out.dtype == scores.dtype
    # Only drops: kept scores are the input's.
    kept = out > NEG_INF
    assert torch.equal(out[kept], scores[kept])
    # Keeps at least min_tokens_to_keep of the finite tokens (one for top_h).
    floor = min(config.get("min_tokens_to_keep", 1), int((scores > NEG_INF).sum(-1).min()))
    assert bool((kept.sum(-1) >= floor).all())
    # A best-scoring token always survives (which one among ties is the view's order).
    best = scores == scores.amax(-1, keepdim=True)
    if config["name"] != "typical_p":  # typical sampling may drop a too-likely token
        assert bool((kept & best).any(-1).all())
    # Rows are independent: each row alone gives the same answer.
    for row in range(scores.shape[0]):
        assert torch.equal(run(config, scores[row : row + 1], fast), out[row : row + 1])
    # The other path agrees.
    assert torch.equal(run(config, scores, not fast), out)
