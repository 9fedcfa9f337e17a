"""The threshold views of the fast path are exact: same kept set and same draws as the dense path.

Rows are built to stress the cut: p placed exactly on a cumulative-mass
boundary, tie groups straddling the cut, nuclei deep below the best token or
spanning most of the row, flat and peaked rows, -inf tails, half precision,
and vocabularies large enough for the sampled mass estimate and the chunked
search (with and without a short last chunk) to run.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logitkit import Pipeline

NEG_INF = float("-inf")
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
#: Sizes around the estimate's sample (8,192 tokens) and the 32-token chunks.
VOCABS = [97, 4096, 20000, 20003, 40000]


@st.composite
def stress_rows(draw: st.DrawFn) -> torch.Tensor:
    batch = draw(st.integers(1, 4))
    vocab = draw(st.sampled_from(VOCABS))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    scale = draw(st.sampled_from([0.01, 0.5, 2.0, 4.0, 6.0]))
    x = torch.randn(batch, vocab, generator=gen) * scale
    for row in range(batch):
        kind = draw(
            st.sampled_from(["normal", "ties", "deep", "peaked", "flat", "sparse", "groups"])
        )
        if kind == "ties":
            x[row] = x[row].round()  # large tie groups, some of them at the cut
        elif kind == "deep":  # the nucleus lies 9 logits below a lone best token
            x[row] = -20.0
            x[row, 0] = 0.0
            x[row, 1 : 1 + vocab // 10] = -9.0 + torch.rand(vocab // 10, generator=gen) * 0.5
        elif kind == "peaked":
            x[row, draw(st.integers(0, vocab - 1))] += 30.0
        elif kind == "flat":
            x[row] = 0.0
        elif kind == "sparse":
            x[row] = x[row].masked_fill(torch.rand(vocab, generator=gen) < 0.9, NEG_INF)
            x[row, 0] = 1.0
        elif (
            kind == "groups"
        ):  # a few equal-probability groups: cumulative masses land on exact values
            x[row] = torch.randint(0, 3, (vocab,), generator=gen).float() * 2.0
    return x.to(draw(st.sampled_from(DTYPES)))


def both(config: object, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    pipe = Pipeline.from_config(config)
    ids = torch.zeros(scores.shape[0], 1, dtype=torch.long)
    return pipe(ids, scores), pipe.replace(fast_path=False)(ids, scores)


def boundary_p(scores: torch.Tensor, draw: st.DrawFn) -> float:
    """A top_p equal to the dense path's cumulative mass at some position of row 0 (ties at the cut)."""
    x = scores[0].double()
    finite = x[x > NEG_INF]
    probs = (finite - torch.logsumexp(finite, 0)).exp().sort(descending=True).values
    cumulative = probs.cumsum(0)
    at = draw(st.integers(0, max(min(int(cumulative.numel()) - 1, 3000), 0)))
    return float(min(max(cumulative[at].item(), 1e-6), 1.0))


CHAINS = [
    lambda p: [{"top_p": p}],
    lambda p: [{"temperature": 0.7}, {"top_p": p}],
    lambda p: [{"top_p": p}, {"min_p": 0.02}],
    lambda p: [{"name": "top_p", "top_p": p, "min_tokens_to_keep": 5}],
    lambda p: [{"min_p": min(p, 0.9)}],
    lambda p: [{"temperature": 1.5}, {"min_p": 0.1}],
    lambda p: [{"epsilon_cutoff": min(p, 0.99) * 1e-3}],
    lambda p: [{"eta_cutoff": min(p, 0.99) * 1e-2}],
    lambda p: [{"top_p": p}, {"typical_p": 0.8}],
    lambda p: [{"typical_p": p}],
    lambda p: [{"name": "typical_p", "typical_p": p, "min_tokens_to_keep": 3}, {"min_p": 0.01}],
    lambda p: [{"temperature": 0.6}, {"typical_p": min(p, 0.95)}],
]


@pytest.mark.parametrize("chain", range(len(CHAINS)))
@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scores=stress_rows(), data=st.data())
def test_kept_set_equals_the_dense_reference(reg, cpu_path, chain, scores, data) -> None:  # type: ignore[no-untyped-def]
    p = data.draw(st.one_of(st.sampled_from([0.5, 0.9, 0.95, 0.999]), st.just(None)))
    if p is None:
        p = boundary_p(scores, data.draw)
    before = scores.clone()
    fused, dense = both(CHAINS[chain](p), scores)
    assert torch.equal(scores, before)
    assert torch.equal(fused == NEG_INF, dense == NEG_INF), "different kept sets"
    assert torch.equal(fused, dense), "different kept scores"


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scores=stress_rows(), data=st.data())
def test_the_fast_path_draws_the_dense_token(reg, cpu_path, scores, data) -> None:  # type: ignore[no-untyped-def]
    scores = scores[(scores > NEG_INF).any(-1)]
    p = data.draw(st.sampled_from([0.3, 0.9]))
    pipe = Pipeline.from_config(
        [{"temperature": 0.9}, {"top_p": p}], seeds=torch.arange(scores.shape[0]) * 7 + 1
    )
    ids = torch.zeros(scores.shape[0], 1, dtype=torch.long)
    fused_state, dense_state = pipe.start(ids), pipe.replace(fast_path=False).start(ids)
    for step in range(2):
        ids = torch.zeros(scores.shape[0], 1 + step, dtype=torch.long)
        fused = fused_state.next_tokens(ids, scores)
        assert torch.equal(fused, dense_state.next_tokens(ids, scores))


@pytest.mark.parametrize(
    "config", [[{"top_p": 0.9}], [{"temperature": 0.8}, {"top_p": 0.8}], [{"min_p": 0.05}]]
)
def test_sampled_distribution_at_batch_64_is_the_dense_paths(reg, cpu_path, config) -> None:  # type: ignore[no-untyped-def]
    """Chi-square: tokens drawn on the fast path at batch 64 follow softmax of the dense path's scores."""
    from scipy.stats import chisquare

    batch, vocab, steps = 64, 20000, 40
    row = torch.randn(vocab, generator=torch.Generator().manual_seed(5)) * 2.5
    scores = row.expand(batch, vocab).contiguous()
    pipe = Pipeline.from_config(config, seeds=torch.arange(batch) * 1000 + 3)
    expected = torch.softmax(
        pipe.replace(fast_path=False)(torch.zeros(batch, 1, dtype=torch.long), scores)[0].double(), -1
    )
    # One generation: each step draws fresh noise.
    state = pipe.start(torch.zeros(batch, 1, dtype=torch.long))
    drawn = []
    for step in range(steps):
        drawn.append(state.next_tokens(torch.zeros(batch, 1 + step, dtype=torch.long), scores))
    tokens = torch.cat(drawn)
    counts = torch.bincount(tokens, minlength=vocab).double()
    assert float(expected[tokens].min()) > 0, "drew a token the dense path removed"
    # Tokens expected at least 5 times are cells of their own; the rest are pooled into one.
    n = tokens.numel()
    big = expected * n >= 5
    observed = torch.cat([counts[big], counts[~big].sum().unsqueeze(0)])
    wanted = torch.cat([expected[big], expected[~big].sum().unsqueeze(0)]) * n
    keep = wanted > 0
    assert int(big.sum()) >= 10  # the test has cells enough to see a wrong distribution
    result = chisquare(
        observed[keep].numpy(),
        wanted[keep].numpy() * observed.sum().item() / wanted[keep].sum().item(),
    )
    assert result.pvalue > 1e-3, result


def test_chi_square_sees_a_wrong_distribution(reg) -> None:
    """The same test rejects draws from a different top_p: it can fail."""
    from scipy.stats import chisquare

    batch, vocab, steps = 64, 20000, 40
    row = torch.randn(vocab, generator=torch.Generator().manual_seed(5)) * 2.5
    scores = row.expand(batch, vocab).contiguous()
    wrong = Pipeline.from_config([{"top_p": 0.6}], seeds=torch.arange(batch) * 1000 + 3)
    state = wrong.start(torch.zeros(batch, 1, dtype=torch.long))
    tokens = torch.cat(
        [state.next_tokens(torch.zeros(batch, 1 + s, dtype=torch.long), scores) for s in range(steps)]
    )
    reference = Pipeline.from_config([{"top_p": 0.9}], fast_path=False)
    expected = torch.softmax(
        reference(torch.zeros(batch, 1, dtype=torch.long), scores)[0].double(), -1
    )
    big = expected * tokens.numel() >= 5
    counts = torch.bincount(tokens, minlength=vocab).double()
    observed = torch.cat([counts[big], counts[~big].sum().unsqueeze(0)])
    wanted = torch.cat([expected[big], expected[~big].sum().unsqueeze(0)]) * tokens.numel()
    assert chisquare(observed.numpy(), wanted.numpy()).pvalue < 1e-6


def test_a_truncation_that_drops_nothing_leaves_the_next_its_row_statistics(reg) -> None:  # type: ignore[no-untyped-def]
    """min_p keeps every token of a near-flat row, then typical_p decides a near tie. The dense
    path gives typical_p the dense row's statistics; the fused view must too, not recompute them
    from the view in another summation order (found by hypothesis: kept sets differed by one
    swap, on the torch ops and the kernels alike)."""
    from pathlib import Path

    from safetensors.torch import load_file

    saved = load_file(str(Path(__file__).parent / "data" / "typical_near_tie_row.safetensors"))
    row, p = saved["row"], float(saved["top_p"])
    fused, dense = both(CHAINS[10](p), row)
    assert torch.equal(fused, dense)
    from logitkit.fastpath import CandidateView, RowStats

    view = CandidateView.full(row, RowStats(row))
    assert view.keep(torch.ones_like(view.values, dtype=torch.bool)).stats is view.stats
    dropped = torch.ones_like(view.values, dtype=torch.bool)
    dropped[:, -1] = False
    assert view.keep(dropped).stats is None
