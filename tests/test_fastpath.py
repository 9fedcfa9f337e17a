"""The fused truncation path against the dense path: same tokens kept, same scores, same draws."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from logitkit import EmptyRowError, Pipeline, Processor, Stage, StepContext, fastpath

NEG_INF = float("-inf")

CHAINS: list[list[object]] = [
    [{"temperature": 0.8}, {"top_k": 50}, {"top_p": 0.9}, {"min_p": 0.05}],
    # repetition_penalty hands a top-k view its edit; before an uncapped truncation it runs densely
    [{"repetition_penalty": 1.3}, {"temperature": 0.8}, {"top_k": 50}, {"top_p": 0.9}],
    [{"repetition_penalty": 0.7}, {"top_k": 3}],
    [{"repetition_penalty": 1.2}, {"top_p": 0.8}],
    [{"top_p": 0.9}],
    [{"name": "top_p", "top_p": 0.5, "min_tokens_to_keep": 3}],
    [{"min_p": 0.05}],
    [{"temperature": 1.3}, {"min_p": 0.1}],
    [{"temperature": 0.7}, {"top_p": 0.95}, {"typical_p": 0.9}],
    [{"typical_p": 0.6}],
    [{"epsilon_cutoff": 3e-3}],
    [{"name": "eta_cutoff", "eta_cutoff": 2e-3, "min_tokens_to_keep": 2}],
    [{"top_h": 0.5}, {"top_k": 40}],
    [{"temperature": 0.6}, {"top_h": 0.8}],
    [{"top_k": 5}],
    [{"name": "top_k", "top_k": 2, "min_tokens_to_keep": 4}, {"top_p": 0.7}],
    # typical_p can drop the best token; what follows must still see the survivors in order
    {
        "order": "listed",
        "processors": [
            {"typical_p": 0.5},
            {"name": "epsilon_cutoff", "epsilon_cutoff": 0.01, "min_tokens_to_keep": 2},
            {"min_p": 0.3},
            {"temperature": 0.9},
        ],
    },
    # temperature after truncation (llama.cpp's order) stays on the view
    {"order": "listed", "processors": [{"top_k": 20}, {"min_p": 0.02}, {"temperature": 1.5}]},
]


def random_rows(batch: int, vocab: int, scale: float, seed: int) -> torch.Tensor:
    return torch.randn(batch, vocab, generator=torch.Generator().manual_seed(seed)) * scale


def adversarial(vocab: int, seed: int) -> torch.Tensor:
    """Rows that stress the view: ties, -inf, flat, peaked, few finite tokens."""
    gen = torch.Generator().manual_seed(seed)
    rows = [
        torch.randint(0, 4, (vocab,), generator=gen).float(),  # big tie groups
        torch.zeros(vocab),  # perfectly flat
        torch.full((vocab,), NEG_INF),  # nothing left
        torch.randn(vocab, generator=gen) * 0.01,  # almost flat
        torch.randn(vocab, generator=gen).index_fill(
            0, torch.tensor([7]), 60.0
        ),  # one token holds the mass
        torch.where(
            torch.rand(vocab, generator=gen) < 0.97, NEG_INF, torch.randn(vocab, generator=gen)
        ),  # few finite
        torch.randn(vocab, generator=gen).round(decimals=1) * 3,  # ties among the leaders
        torch.cat([torch.full((2,), 5.0), torch.full((vocab - 2,), NEG_INF)]),  # two tied survivors
    ]
    return torch.stack(rows)


def inputs() -> list[tuple[str, torch.Tensor]]:
    cases = [
        ("random-fp32", random_rows(4, 1000, 3.0, 1)),
        ("flat-fp32", random_rows(3, 3000, 0.5, 2)),
        ("wide-fp32", random_rows(2, 12000, 4.0, 3)),
        ("adversarial-fp32", adversarial(700, 4)),
        ("random-fp16", random_rows(4, 5000, 4.0, 5).half()),
        ("random-bf16", random_rows(4, 5000, 4.0, 6).bfloat16()),
        ("adversarial-bf16", adversarial(500, 7).bfloat16()),
        ("adversarial-fp16", adversarial(300, 8).half()),
    ]
    return cases


def with_model_logits(scores: torch.Tensor) -> torch.Tensor:
    """The rows a selector can pick from: a row the model left with no finite logit raises EmptyRowError."""
    return scores[(scores > NEG_INF).any(dim=-1)]


def pipeline(chain: object, **context: object) -> Pipeline:
    return Pipeline.from_config(chain, **context)


def both_paths(pipe: Pipeline, run: Callable[[Pipeline], torch.Tensor]) -> tuple[object, object]:
    """The result of ``run`` on the fused then the dense path (or the error it raised)."""
    results: list[object] = []
    for fast in (True, False):
        try:
            results.append(run(pipe.replace(fast_path=fast)))
        except EmptyRowError as exc:
            results.append(f"EmptyRowError: {exc}")
    return results[0], results[1]


def same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return torch.equal(a, b)
    return a == b


INPUTS = inputs()


def best_tokens(scores: torch.Tensor, length: int) -> torch.Tensor:
    """A history of each row's best tokens (then token 0), so penalties hit the head of the row."""
    best = scores.nan_to_num(nan=0.0).argsort(dim=-1, descending=True, stable=True)[:, :length]
    return torch.cat([best, best.new_zeros(scores.shape[0], length - best.shape[1])], dim=1)


@pytest.mark.parametrize("chain", CHAINS, ids=[str(c) for c in CHAINS])
def test_fused_and_dense_scores_are_identical(reg, chain) -> None:  # type: ignore[no-untyped-def]
    for label, scores in INPUTS:
        pipe = pipeline(chain)
        ids = best_tokens(scores, 3)
        before = scores.clone()
        fused, dense = both_paths(pipe, lambda p: p(ids, scores))  # noqa: B023
        assert torch.equal(scores, before), "the input was modified"
        assert fused.dtype == dense.dtype == scores.dtype, label
        assert torch.equal(fused == NEG_INF, dense == NEG_INF), f"{label}: different token sets"
        assert torch.equal(fused, dense), f"{label}: different scores"
        # Same probabilities too (rows with a token left).
        alive = (dense > NEG_INF).any(-1)
        assert torch.equal(fused[alive].float().softmax(-1), dense[alive].float().softmax(-1)), (
            label
        )


@pytest.mark.parametrize("chain", CHAINS, ids=[str(c) for c in CHAINS])
def test_sampling_from_the_view_draws_the_dense_token(reg, chain) -> None:  # type: ignore[no-untyped-def]
    for label, all_scores in INPUTS:
        scores = with_model_logits(all_scores)
        batch = scores.shape[0]
        pipe = pipeline(chain, seeds=torch.arange(batch, dtype=torch.int64) * 1000 + 17)
        for step in range(3):
            ids = best_tokens(scores, 4 + step)
            fused, dense = both_paths(pipe, lambda p: p.next_tokens(ids, scores))  # noqa: B023
            assert same(fused, dense), f"{label} step {step}"


def test_greedy_selector_on_the_view_matches_argmax(reg) -> None:  # type: ignore[no-untyped-def]
    for label, all_scores in INPUTS:
        scores = with_model_logits(all_scores)
        pipe = pipeline({"processors": [{"top_k": 10}, {"top_p": 0.8}], "selector": "greedy"})
        ids = torch.zeros(scores.shape[0], 2, dtype=torch.long)
        fused, dense = both_paths(pipe, lambda p: p.next_tokens(ids, scores))  # noqa: B023
        assert same(fused, dense), label


def test_the_chain_runs_on_a_view_and_samples_from_it(reg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The fast path is really taken: no processor's dense apply runs, the selector reads the view."""
    pipe = pipeline(
        [{"temperature": 0.8}, {"top_k": 50}, {"top_p": 0.9}, {"min_p": 0.05}],
        seeds=torch.arange(4),
    )
    for processor in pipe.processors:
        monkeypatch.setattr(processor, "apply", lambda *a: pytest.fail("dense apply ran"))
    monkeypatch.setattr(pipe.selector, "select", lambda *a: pytest.fail("dense select ran"))
    tokens = pipe.next_tokens(torch.zeros(4, 1, dtype=torch.long), random_rows(4, 5000, 3.0, 9))
    assert tokens.shape == (4,)


def test_a_nucleus_deep_below_the_best_token_needs_no_full_sort(reg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The mass top_p needs lies 9 logits below the best token: the mass estimate finds it."""
    scores = torch.full((2, 50000), -20.0)
    scores[:, 0] = 0.0
    scores[:, 1:3001] = -9.0  # a tie group holding ~27% of the mass
    scores[1, 5:40] += torch.linspace(0.0, 0.5, 35)
    pipe = pipeline([{"top_p": 0.9}])
    ctx = pipe.step_context(torch.zeros(2, 1, dtype=torch.long))
    dense = fastpath.CandidateView.full
    monkeypatch.setattr(
        fastpath.CandidateView, "full", classmethod(lambda *a: pytest.fail("full sort"))
    )
    view = fastpath.run_fused(pipe.processors, scores, ctx)
    kept = (view.values > NEG_INF).sum(-1)
    assert bool((kept > 1).all())
    monkeypatch.setattr(fastpath.CandidateView, "full", dense)
    assert torch.equal(view.densify(scores), pipe.replace(fast_path=False).process(scores, ctx))


def test_only_the_rows_a_view_cannot_settle_take_the_full_sort(reg, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A flat row (its nucleus is most of the vocabulary) costs a full sort of that row alone."""
    scores = random_rows(6, 20000, 4.0, 21)
    scores[3] = torch.randn(20000, generator=torch.Generator().manual_seed(3)) * 0.01
    sorted_rows: list[int] = []
    full = fastpath.CandidateView.full.__func__  # type: ignore[attr-defined]

    def spy(cls, rows, stats=None):  # type: ignore[no-untyped-def]
        sorted_rows.append(rows.shape[0])
        return full(cls, rows, stats)

    monkeypatch.setattr(fastpath.CandidateView, "full", classmethod(spy))
    pipe = pipeline([{"top_p": 0.9}], seeds=torch.arange(6))
    ids = torch.zeros(6, 1, dtype=torch.long)
    fused_tokens = pipe.next_tokens(ids, scores)
    fused = pipe(ids, scores)
    assert sorted_rows == [1, 1]  # one row each call
    dense = pipe.replace(fast_path=False)
    assert torch.equal(fused, dense(ids, scores))
    assert torch.equal(fused_tokens, dense.next_tokens(ids, scores))


def test_top_k_view_is_topk_and_needs_no_statistics_pass(reg) -> None:  # type: ignore[no-untyped-def]
    scores = random_rows(3, 4000, 2.0, 11)
    pipe = pipeline([{"temperature": 0.8}, {"top_k": 50}, {"top_p": 0.9}])
    view = fastpath.run_fused(
        pipe.processors, scores, pipe.step_context(torch.zeros(3, 1, dtype=torch.long))
    )
    # top_k's 50 plus one to see a tie at the edge; at most what top_p kept is left
    assert view.complete and view.width == 51
    assert int((view.values > NEG_INF).sum(dim=-1).max()) <= 50


class Halve(Processor):
    """A truncation-stage processor without a fast path: it forces a dense step in the run."""

    name = "halve"
    stage = Stage.TRUNCATION
    priority = 35

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores / 2


def test_a_processor_without_fast_path_splits_the_run_and_stays_correct(reg) -> None:  # type: ignore[no-untyped-def]
    from logitkit_builtins.temperature import Temperature
    from logitkit_builtins.truncation import MinP, TopK, TopP

    processors = [
        Temperature(Temperature.Config(temperature=0.9)),
        TopK(TopK.Config(top_k=30)),
        Halve(),
        TopP(TopP.Config(top_p=0.8)),
        MinP(MinP.Config(min_p=0.1)),
    ]
    assert fastpath.fused_runs(processors) == [(0, 2), (3, 5)]
    pipe = Pipeline(processors, reg.selectors["sample"].cls())
    for label, scores in INPUTS:
        pipe = pipe.replace(seeds=torch.arange(scores.shape[0]))
        ids = torch.zeros(scores.shape[0], 2, dtype=torch.long)
        fused, dense = both_paths(pipe, lambda p: p(ids, scores))  # noqa: B023
        assert torch.equal(fused, dense), label
        live = with_model_logits(scores)
        pipe = pipe.replace(seeds=torch.arange(live.shape[0]))
        ids = ids[: live.shape[0]]
        fused, dense = both_paths(pipe, lambda p: p.next_tokens(ids, live))  # noqa: B023
        assert same(fused, dense), label


def test_temperature_zero_has_no_fast_path_and_stays_greedy(reg) -> None:  # type: ignore[no-untyped-def]
    pipe = pipeline([{"temperature": 0.0}, {"top_p": 0.9}])
    assert fastpath.fused_kind(pipe.processors[0]) is None
    scores = random_rows(3, 500, 2.0, 12)
    fused, dense = both_paths(pipe, lambda p: p(torch.zeros(3, 1, dtype=torch.long), scores))
    assert torch.equal(fused, dense)
    assert torch.equal((fused > NEG_INF).sum(-1), torch.ones(3, dtype=torch.long))


def test_empty_rows_take_the_dense_policy(reg) -> None:  # type: ignore[no-untyped-def]
    """A row with no usable logit raises on both paths; NaN scores are the dense guard's to clean."""
    scores = random_rows(3, 300, 1.0, 13)
    scores[1, :] = NEG_INF
    pipe = pipeline([{"top_k": 5}], seeds=torch.arange(3))
    fused, dense = both_paths(
        pipe, lambda p: p.next_tokens(torch.zeros(3, 1, dtype=torch.long), scores)
    )
    assert isinstance(fused, str) and fused == dense
    scores[1, :] = random_rows(1, 300, 1.0, 14)
    scores[1, 42] = float("nan")
    fused, dense = both_paths(
        pipe, lambda p: p.next_tokens(torch.zeros(3, 1, dtype=torch.long), scores)
    )
    assert same(fused, dense)


def test_chunked_topk_finds_the_same_values_as_topk() -> None:
    for batch, vocab, k, dtype in [
        (3, 50000, 51, torch.float32),
        (2, 40000, 101, torch.bfloat16),
        (2, 6500, 7, torch.float16),
    ]:
        scores = (random_rows(batch, vocab, 3.0, vocab) + 0).to(dtype)
        scores[0, 100:200] = scores[0].max()  # a tie group at the top
        values, ids, outside = fastpath.chunked_topk(scores, k)
        assert outside is None
        assert torch.equal(values, torch.topk(scores, k).values)
        assert torch.equal(scores.gather(1, ids), values)
        assert bool((ids.sort(-1).values.diff(dim=-1) > 0).all())  # distinct tokens


@pytest.mark.parametrize("vocab", [50000, 50017])  # 50017: a short last chunk
@pytest.mark.parametrize("penalty", [1.1, 4.0, 0.5])
def test_chunked_topk_with_an_edit_is_sure_above_its_bound(vocab: int, penalty: float) -> None:
    """Written into the chunks read, an edit gives the edited row's top values wherever they beat
    the bound on the chunks not read; edits hitting the best tokens (and raising others) included."""
    gen = torch.Generator().manual_seed(vocab)
    scores = random_rows(4, vocab, 3.0, vocab)
    best = scores.topk(40).indices
    ids = torch.cat([best, torch.randint(0, vocab, (4, 200), generator=gen), best[:, :5]], dim=1)
    ids[:, -1] = vocab - 1  # the tail
    picked = scores.gather(1, ids)
    edit = fastpath.SparseEdit(ids, torch.where(picked < 0, picked * penalty, picked / penalty))
    edited = edit.applied(scores)
    maxima = edit.raised_maxima(fastpath.lane_maxima(scores))
    assert bool((maxima >= fastpath.lane_maxima(edited)).all())  # upper bounds
    for k in (51, 150):  # 150 * 8 chunks still fit: the two-level search runs
        values, got, outside = fastpath.chunked_topk(scores, k, maxima, edit)
        assert outside is not None
        assert torch.equal(edited.gather(1, got), values)
        sure = values > outside
        expected = edited.topk(k).values
        assert torch.equal(values[sure], expected[sure])
        assert bool(sure[:, :10].all()), "the bound should leave the head sure on these rows"


def test_an_edit_that_empties_the_best_chunks_still_matches_the_dense_path(reg) -> None:  # type: ignore[no-untyped-def]
    """repetition_penalty on the best tokens of every row, hard: the best chunks fall below others,
    the view stands a bound in for the chunks not read, and rows retry on larger views."""
    scores = random_rows(3, 151936, 4.0, 21)
    scores[2] = scores[2].round()  # tie groups at the edge
    for penalty, history in ((8.0, 600), (1.3, 60), (0.4, 60)):
        ids = scores.topk(history).indices
        for chain in (
            [{"repetition_penalty": penalty}, {"top_k": 50}, {"top_p": 0.9}],
            [{"repetition_penalty": penalty}, {"temperature": 0.8}, {"top_k": 3}],
            [{"repetition_penalty": penalty}, {"top_p": 0.9}],  # uncapped: the edit runs densely
        ):
            pipe = pipeline(chain, seeds=torch.arange(3))
            fused, dense = both_paths(pipe, lambda p: p(ids, scores))  # noqa: B023
            assert same(fused, dense), (penalty, chain)
            fused, dense = both_paths(pipe, lambda p: p.next_tokens(ids, scores))  # noqa: B023
            assert same(fused, dense), (penalty, chain)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_chain_on_a_qwen_sized_row_matches_the_dense_path(reg, dtype) -> None:  # type: ignore[no-untyped-def]
    scores = random_rows(2, 151936, 4.0, 15).to(dtype)
    ids = torch.randint(0, 151936, (2, 64), generator=torch.Generator().manual_seed(0))
    chain = [
        {"repetition_penalty": 1.1},
        {"temperature": 0.8},
        {"top_k": 50},
        {"top_p": 0.9},
        {"min_p": 0.05},
    ]
    for config in (chain, [{"top_p": 0.9}], [{"min_p": 0.05}]):
        pipe = pipeline(config, seeds=torch.arange(2))
        fused, dense = both_paths(pipe, lambda p: p(ids, scores))
        assert same(fused, dense)
        fused, dense = both_paths(pipe, lambda p: p.next_tokens(ids, scores))
        assert same(fused, dense)


def nan_rows(vocab: int, seed: int) -> torch.Tensor:
    """Rows holding NaN where a view would rank it: at the top, in a body chunk, in the short tail."""
    rows = random_rows(4, vocab, 2.0, seed)
    rows[0, min(3, vocab - 2)] = float("nan")
    rows[1, vocab - 1] = float("nan")  # the short last chunk
    rows[2, :] = float("nan")
    return rows


@pytest.mark.parametrize("chain", CHAINS, ids=[str(c) for c in CHAINS])
def test_nan_rows_get_the_dense_result(reg, chain) -> None:  # type: ignore[no-untyped-def]
    """The fast path must not rank NaN as a score: those rows take the dense path (found by the fuzz run)."""
    for vocab in (3, 37, 5000):
        scores = nan_rows(vocab, vocab)
        ids = torch.zeros(4, 2, dtype=torch.long)
        fused, dense = both_paths(pipeline(chain), lambda p: p(ids, scores))  # noqa: B023
        assert isinstance(fused, torch.Tensor) and isinstance(dense, torch.Tensor)
        assert torch.equal(fused.nan_to_num(nan=7.0), dense.nan_to_num(nan=7.0)), vocab


def test_top_k_then_min_length_on_a_nan_row_keeps_eos_out(reg) -> None:  # type: ignore[no-untyped-def]
    """The fuzz case: the view dropped NaN, kept only eos, min_length removed it, and "top" gave eos."""
    pipe = pipeline({"processors": [{"top_k": 1}, {"min_length": 12}], "tokens": {"eos": 1}})
    scores = torch.tensor([[-0.0152, 0.0038, float("nan")]])
    ids = torch.tensor([[5, 6]])
    fused, dense = both_paths(pipe, lambda p: p.next_tokens(ids, scores))
    assert same(fused, dense) and same(dense, torch.tensor([0]))


@pytest.mark.parametrize(
    ("batch", "vocab", "dtype"),
    [
        (3, 151936, torch.float32),
        (4, 50003, torch.float32),
        (2, 4099, torch.bfloat16),
        (3, 7, torch.float16),
    ],
)
def test_tokens_at_least_lists_what_nonzero_lists_in_its_order(
    batch: int, vocab: int, dtype: torch.dtype
) -> None:
    """The lane search (read level by level, then reordered by counting) gives exactly
    ``(scores >= threshold).nonzero()``: the same tokens, by row then column; the short
    tail (50003 and 4099 are not multiples of the lane depth) and a vocabulary shorter
    than one lane included."""
    scores = random_rows(batch, vocab, 3.0, vocab).to(dtype)
    scores[0, -3:] = scores[0].max()  # the tail reaches the threshold
    top = scores.float().amax(dim=-1, keepdim=True)
    for depth in (0.5, 4.0, 9.0):
        threshold = (top - depth).to(dtype)
        threshold[-1] = float("inf")  # a row with nothing to find
        stats = fastpath.RowStats(scores)
        rows, cols = fastpath.tokens_at_least(scores, threshold, stats.threshold_maxima())
        expected = (scores >= threshold).nonzero(as_tuple=True)
        assert torch.equal(rows, expected[0])
        assert torch.equal(cols, expected[1])


def test_scratch_buffers_are_per_thread_and_grow() -> None:
    """A slot is reused on its thread (no fresh vocabulary-sized tensor per call), grows for a
    larger batch, and another thread gets its own: a Pipeline shared by threads stays safe."""
    import threading

    from logitkit.scratch import scratch

    first = scratch("test", (2, 100), torch.float32, torch.device("cpu"))
    again = scratch("test", (1, 50), torch.float32, torch.device("cpu"))
    assert again.data_ptr() == first.data_ptr()
    larger = scratch("test", (4, 100), torch.float32, torch.device("cpu"))
    assert larger.shape == (4, 100)
    other: list[torch.Tensor] = []
    thread = threading.Thread(
        target=lambda: other.append(scratch("test", (4, 100), torch.float32, torch.device("cpu")))
    )
    thread.start()
    thread.join()
    assert other[0].data_ptr() != larger.data_ptr()
    assert scratch("test", (4, 100), torch.float64, torch.device("cpu")).dtype == torch.float64
    from logitkit.scratch import release

    release()
    assert scratch("test", (1, 10), torch.float32, torch.device("cpu")).data_ptr() != larger.data_ptr()


def test_a_scratch_buffer_made_under_inference_mode_serves_calls_outside_it() -> None:
    from logitkit.scratch import scratch

    with torch.inference_mode():
        scratch("inference", (3, 10), torch.float32, torch.device("cpu")).fill_(1.0)
    scratch("inference", (3, 10), torch.float32, torch.device("cpu")).fill_(2.0)  # no RuntimeError


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_a_folded_divisor_gives_the_statistics_of_the_divided_row_bit_for_bit(
    dtype: torch.dtype,
) -> None:
    """Temperature folded into the row statistics (never made dense) reads what the dense division
    gives: the maxima, the best score, the normalisers, the threshold view."""
    scores = random_rows(5, 50003, 4.0, 3).to(dtype)  # 50003: a short tail after the lanes
    scores[1, -1] = scores[1].max() + 1  # the best token in the tail
    scores[2, 100] = float("nan")
    for temperature in (0.7, 1.3):
        folded = fastpath.RowStats(scores, divisor=temperature)
        dense = fastpath.RowStats(scores / temperature)
        for got, expected in [
            (folded.threshold_maxima(), dense.threshold_maxima()),
            (folded.top(), dense.top()),
            (folded.nan_rows(), dense.nan_rows()),
            (folded.log_normalizer(), dense.log_normalizer()),
            (
                folded.precise_log_normalizer(torch.tensor([0, 3])),
                dense.precise_log_normalizer(torch.tensor([0, 3])),
            ),
        ]:
            torch.testing.assert_close(got, expected, rtol=0, atol=0, equal_nan=True)
        threshold = dense.top() - 3.0
        for built_from in (folded, dense):
            assert built_from.folded == (built_from is folded)
        view_folded = fastpath.CandidateView.at_least(scores, threshold, folded)
        view_dense = fastpath.CandidateView.at_least(scores / temperature, threshold, dense)
        assert view_folded is not None and view_dense is not None
        assert torch.equal(view_folded[1], view_dense[1])
        assert torch.equal(view_folded[0].values, view_dense[0].values)
        assert torch.equal(view_folded[0].token_ids, view_dense[0].token_ids)
        assert folded.folded, "the search must not have made the row dense"


@pytest.mark.parametrize("temperature", [0.6, 1.0, 1.7])
def test_temperature_ahead_of_an_uncapped_truncation_is_folded_and_matches_the_dense_path(
    reg, temperature: float, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    scores = random_rows(6, 151936, 4.0, 8)
    ids = torch.zeros(6, 1, dtype=torch.long)
    made_dense: list[int] = []
    original = fastpath.RowStats.scores.fget
    assert original is not None

    def watched(stats: fastpath.RowStats) -> torch.Tensor:
        if stats._scores is None:
            made_dense.append(1)
        return original(stats)

    for config in (
        [{"temperature": temperature}, {"top_p": 0.9}],
        [{"temperature": temperature}, {"min_p": 0.05}],
    ):
        pipe = pipeline(config, seeds=torch.arange(6))
        monkeypatch.setattr(fastpath.RowStats, "scores", property(watched))
        fused = pipe.next_tokens(ids, scores)
        monkeypatch.undo()
        dense = pipe.replace(fast_path=False).next_tokens(ids, scores)
        assert torch.equal(fused, dense), config
        assert torch.equal(pipe(ids, scores), pipe.replace(fast_path=False)(ids, scores))
    assert not made_dense, "temperature was made dense instead of folded"


def test_a_third_party_threshold_hint_that_reads_the_scores_sees_them_divided(reg) -> None:  # type: ignore[no-untyped-def]
    """No fold unless the hint reads only ``stats``: a hint that reads ``scores`` gets the
    temperature's output, as before."""
    seen: list[torch.Tensor] = []

    class ReadsScores(Processor):
        name = "reads_scores_cut"
        stage = Stage.TRUNCATION
        fused = "truncate"

        def fused_threshold(self, scores, stats, attempt):  # type: ignore[no-untyped-def]
            seen.append(scores)
            return None if attempt else scores.amax(dim=-1, keepdim=True) - 2.0

        def apply_sorted(self, view, ctx):  # type: ignore[no-untyped-def]
            return view.keep(view.values >= view.values[:, :1] - 2.0)

        def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
            return scores.masked_fill(scores < scores.amax(dim=-1, keepdim=True) - 2.0, NEG_INF)

    from logitkit_builtins.temperature import Temperature

    scores = random_rows(2, 5000, 3.0, 4)
    pipe = Pipeline(
        [Temperature(Temperature.Config(temperature=0.5)), ReadsScores()],
        reg.selectors["greedy"].cls(),
    )
    fused, dense = both_paths(pipe, lambda p: p(torch.zeros(2, 1, dtype=torch.long), scores))
    assert same(fused, dense)
    assert seen and torch.equal(seen[0], scores / 0.5)


@pytest.mark.parametrize("temperature", [0.5, 0.8, 1.0, 1.4])
def test_the_mass_bound_threshold_never_leaves_the_mass_outside(temperature: float) -> None:
    """The lane maxima's bound: the tokens at or above it hold at least the mass asked for, in
    every row where it is finite (float64 reference)."""
    scores = random_rows(32, 151936, 4.0, 11) / temperature
    scores[0] = scores[0].round()  # tie groups
    stats = fastpath.RowStats(scores)
    for mass in (0.5, 0.9, 0.95):
        threshold = fastpath.mass_bound_threshold(stats, mass)
        probs = torch.softmax(scores.double(), dim=-1)
        held = (probs * (scores >= threshold)).sum(dim=-1)
        finite = torch.isfinite(threshold).squeeze(-1)
        assert bool((held[finite] >= mass * (1 - 1e-6)).all()), (mass, held[finite].min())
        if temperature <= 1.0:
            assert bool(finite.all()), "a nucleus this small should be bounded in every row"


def test_scores_that_require_grad_run_the_fast_path(reg) -> None:  # type: ignore[no-untyped-def]
    """A model's logits straight out of ``forward`` require grad; the scratch buffers (out=) refuse
    such tensors, so the statistics take fresh ones or run without grad."""
    scores = random_rows(3, 20000, 4.0, 5).requires_grad_()
    ids = torch.zeros(3, 1, dtype=torch.long)
    for config in (
        [{"top_p": 0.9}],
        [{"temperature": 0.7}, {"top_p": 0.9}],
        [{"typical_p": 0.9}],
        [{"eta_cutoff": 3e-4}],
        [{"repetition_penalty": 1.2}, {"top_k": 20}, {"top_p": 0.8}],
    ):
        pipe = pipeline(config, seeds=torch.arange(3))
        fused = pipe(ids, scores)
        dense = pipe.replace(fast_path=False)(ids, scores)
        assert torch.equal(fused.detach(), dense.detach()), config
        assert torch.equal(
            pipe.next_tokens(ids, scores), pipe.replace(fast_path=False).next_tokens(ids, scores)
        )


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("lanes", [4748, 4751, 300])
def test_top_lanes_gives_topk_values(batch: int, lanes: int) -> None:
    """The two-level lane search returns ``torch.topk``'s values, and lanes holding them; tie
    groups (integer maxima) and a short last group included."""
    gen = torch.Generator().manual_seed(lanes + batch)
    for maxima in (
        torch.randn(batch, lanes, generator=gen) * 4,
        torch.randint(0, 5, (batch, lanes), generator=gen).float(),
    ):
        for n in (1, 52, 150):
            values, picked = fastpath.top_lanes(maxima, n)
            assert torch.equal(values, torch.topk(maxima, n).values)
            assert torch.equal(maxima.gather(1, picked), values)
            assert bool((picked.sort(-1).values.diff(dim=-1) > 0).all())  # distinct lanes
