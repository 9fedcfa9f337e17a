"""Numerical edge cases for every built-in processor and for the pipeline as a whole.

Inputs: rows that are all -inf, rows holding NaN, rows holding +inf, fp16 and
bf16 scores near the type's limits, a vocabulary of one token, batches of 1
and 256, and a chain whose masks together remove every token.

Per processor: it never raises, returns the same shape and dtype, never writes
into its input, never turns finite scores into NaN, and a degenerate row never
changes what the other rows of the batch get. For the pipeline: selection never
hits torch's "probability tensor contains either inf, nan or element < 0", never
picks a NaN token, and never falls back to token 0 silently: an emptied row
follows ``on_empty_row`` ("top" keeps the model's top token, "error" names the
processor that emptied it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from logitkit import EmptyRowError, Pipeline, Processor, StepContext, TokenSettings
from logitkit.registry import build_registry

REGISTRY = build_registry(env={})
# The output constraints need a real tokenizer and row state; tests/test_constraints.py covers them.
CONSTRAINTS = {"json_schema", "regex", "grammar", "choice"}
BUILTINS = sorted(
    name for name, entry in REGISTRY.processors.items() if entry.plugin == "builtins" and name not in CONSTRAINTS
)
TOKENS = TokenSettings(eos=[1], bos=2, pad=0)
NEG_INF, POS_INF, NAN = float("-inf"), float("inf"), float("nan")

#: A config per built-in that makes it act on small vocabularies (defaults are often no-ops).
EXAMPLES: dict[str, dict[str, Any]] = {
    "bad_words_ids": {"bad_words_ids": [[3], [4, 5]]},
    "begin_suppress_tokens": {"begin_suppress_tokens": [1, 2], "begin_step": 4},
    "encoder_no_repeat_ngram_size": {"ngram_size": 2},
    "encoder_repetition_penalty": {"penalty": 1.3},
    "epsilon_cutoff": {"epsilon_cutoff": 0.05},
    "eta_cutoff": {"eta_cutoff": 0.05},
    "exponential_decay_length_penalty": {"start_index": 0, "decay_factor": 1.5},
    "forced_bos_token_id": {"forced_bos_token_id": 2},
    "forced_decoder_ids": {"forced_decoder_ids": {6: 3}},
    "forced_eos_token_id": {"max_length": 7},
    "guidance_scale": {"guidance_scale": 1.5},
    "min_length": {"min_length": 10},
    "min_new_tokens": {"min_new_tokens": 8},
    "min_p": {"min_p": 0.1},
    "no_repeat_ngram_size": {"ngram_size": 2},
    "repetition_penalty": {"penalty": 1.3},
    "sequence_bias": {
        "sequence_bias": [{"tokens": [4, 5], "bias": 3.0}, {"tokens": [7], "bias": -2.0}]
    },
    "suppress_tokens": {"suppress_tokens": [0, 3]},
    "temperature": {"temperature": 0.7},
    "top_h": {"top_h": 0.5},
    "top_k": {"top_k": 3},
    "top_p": {"top_p": 0.8},
    "typical_p": {"typical_p": 0.8},
    "watermarking": {"bias": 2.0},
    # The samplers of other engines (logitkit_builtins.engines).
    "allowed_token_ids": {"allowed_token_ids": [0, 1, 2, 3]},
    "logit_bias": {"logit_bias": {0: 5.0, 1: -100.0}},
    "frequency_penalty": {"frequency_penalty": 0.7},
    "presence_penalty": {"presence_penalty": 1.5},
    "dry": {"multiplier": 0.8, "allowed_length": 1},
    "top_n_sigma": {"top_n_sigma": 1.0},
    "dynamic_temperature": {"temperature": 0.8, "range": 0.5},
    "quadratic_smoothing": {"smoothing_factor": 0.3},
    "tfs": {"tfs": 0.9},
    "top_a": {"top_a": 0.2},
    "xtc": {"probability": 1.0, "threshold": 0.05},
}


class FakeModel:
    """Stands in for a causal LM: logits looked up from the last fed token, row by row."""

    def __init__(self, vocab: int) -> None:
        self.table = torch.randn(64, vocab, generator=torch.Generator().manual_seed(0))

    def __call__(self, input_ids: torch.Tensor, **kwargs: Any) -> dict[str, Any]:
        return {"logits": self.table[input_ids % 64], "cache": None}


def build(name: str) -> Processor:
    cls = REGISTRY.processors[name].cls
    extra: dict[str, Any] = {}
    if name == "prefix_allowed_tokens":  # code-only: built with a callable
        extra["fn"] = lambda ids, vocab: (torch.arange(vocab) % 2 == 0).expand(ids.shape[0], vocab)
    processor: Processor = cls(cls.Config.model_validate(EXAMPLES.get(name, {})), TOKENS, **extra)
    return processor


def context(ids: torch.Tensor, vocab: int) -> StepContext:
    return StepContext(
        input_ids=ids,
        prompt_lengths=2,
        steps=int(ids.shape[1]) - 2,
        tokens=TOKENS,
        model=FakeModel(vocab),
        seeds=torch.arange(ids.shape[0], dtype=torch.int64) * 7 + 1,
    )


def history(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(2, 8, (batch, 6), generator=torch.Generator().manual_seed(seed))


def base(batch: int, vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, vocab, generator=torch.Generator().manual_seed(seed)) * 3


def edge_cases() -> Iterator[tuple[str, torch.Tensor, torch.Tensor, list[int]]]:
    """(label, scores, input_ids, degenerate rows)."""
    ids, x = history(3), base(3, 12)
    all_neg = x.clone()
    all_neg[1] = NEG_INF
    yield "all_neg_inf_row", all_neg, ids, [1]
    some_nan = x.clone()
    some_nan[1, [2, 5]] = NAN
    yield "nan_in_row", some_nan, ids, [1]
    all_nan = x.clone()
    all_nan[1] = NAN
    yield "nan_row", all_nan, ids, [1]
    pos_inf = x.clone()
    pos_inf[1, 4] = POS_INF
    yield "pos_inf", pos_inf, ids, [1]
    for dtype in (torch.float16, torch.bfloat16):
        top = torch.finfo(dtype).max
        near = x.clone()
        near[0, 0], near[0, 1] = top * 0.99, -top * 0.99
        near[1] = top * 0.98
        near[1, 3] = top * 0.99
        near[2, 5] = -top
        yield f"limits_{str(dtype).removeprefix('torch.')}", near.to(dtype), ids, []
    yield "vocab_1", base(3, 1), ids, []
    yield "batch_1", base(1, 12), ids[:1], []
    yield "batch_256", base(256, 12, seed=1), history(256, seed=1), []


CASES = list(edge_cases())


def test_every_builtin_has_a_config_that_builds() -> None:
    """New built-ins must come with an example here (or build from defaults), so none escapes these tests."""
    assert BUILTINS, "the built-in plugin did not load"
    for name in BUILTINS:
        build(name)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    a, b = a.double(), b.double()
    if not (
        torch.equal(a.isnan(), b.isnan())
        and torch.equal(a.isposinf(), b.isposinf())
        and torch.equal(a.isneginf(), b.isneginf())
    ):
        return False
    finite = torch.isfinite(a)
    return bool(torch.allclose(a[finite], b[finite], rtol=1e-3, atol=1e-3))


@pytest.mark.parametrize("name", BUILTINS)
def test_processor_survives_every_edge_case(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    for label, scores, ids, degenerate in CASES:
        vocab = scores.shape[-1]
        before, ids_before = scores.clone(), ids.clone()
        out = build(name).apply(scores, context(ids, vocab))
        where = f"{name} on {label}"
        assert isinstance(out, torch.Tensor), where
        assert out.shape == scores.shape and out.dtype == scores.dtype, where
        assert _same(scores, before) and torch.equal(ids, ids_before), (
            f"{where}: modified its input"
        )
        clean = [r for r in range(scores.shape[0]) if r not in degenerate]
        assert not bool(torch.isnan(out[clean]).any()), f"{where}: NaN from NaN-free rows"
        # A degenerate row must not change what the other rows get.
        probe = clean if scores.shape[0] <= 8 else [0, 100, 255]
        if degenerate and probe:
            alone = build(name).apply(scores[probe].clone(), context(ids[probe], vocab))
            assert _same(alone, out[probe]), f"{where}: a degenerate row changed the other rows"
        elif scores.shape[0] > 8:
            for row in probe:
                alone = build(name).apply(
                    scores[row : row + 1].clone(), context(ids[row : row + 1], vocab)
                )
                assert _same(alone[0], out[row]), f"{where}: row {row} differs when run alone"


# -- the pipeline as a whole --------------------------------------------------------------

CHAINS: dict[str, Any] = {
    "greedy": [],
    "sample": [{"temperature": 0.7}, {"top_k": 5}, {"top_p": 0.9}, {"min_p": 0.05}],
    "multinomial": {
        "processors": [{"temperature": 0.7}, {"top_p": 0.9}],
        "selector": "multinomial",
    },
    "renormalized": [{"temperature": 0.7}, {"top_k": 5}, "renormalize_logits"],
    "typical": [{"typical_p": 0.5}, {"epsilon_cutoff": 0.01}],
    "penalised": {
        "tokens": {"eos": [1]},
        "processors": [
            {"repetition_penalty": 1.3},
            {"min_new_tokens": 30},
            {"no_repeat_ngram_size": 2},
            {"temperature": 1.2},
        ],
    },
}


def pipelines(chain: Any, batch: int) -> Iterator[Pipeline]:
    for fast in (True, False):
        for policy in ("top", "error"):
            yield Pipeline.from_config(
                chain, on_empty_row=policy, seeds=torch.arange(batch) * 11 + 3, fast_path=fast
            )


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_selection_never_fails_on_bad_numbers(chain: str) -> None:
    torch.manual_seed(0)  # multinomial draws from torch's RNG
    for label, scores, ids, _ in CASES:
        if label in ("all_neg_inf_row", "nan_row"):
            continue  # the model gave nothing to pick: tested below
        for pipe in pipelines(CHAINS[chain], scores.shape[0]):
            try:
                tokens = pipe.next_tokens(ids, scores)
            except EmptyRowError as exc:
                # Only the strict policy may refuse, and it names the processor that emptied the row.
                assert pipe.on_empty_row == "error" and "processor '" in str(exc), (
                    f"{chain} on {label}: {exc}"
                )
                continue
            where = f"{chain} on {label} (fast_path={pipe.fast_path}, {pipe.on_empty_row})"
            assert tokens.shape == (scores.shape[0],) and tokens.dtype == torch.long, where
            assert bool(((tokens >= 0) & (tokens < scores.shape[-1])).all()), where
            picked = scores.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
            assert not bool(torch.isnan(picked).any()), f"{where}: picked a NaN token"
            inf_rows = torch.isposinf(scores).any(dim=-1)
            assert bool(torch.isposinf(picked[inf_rows]).all()), (
                f"{where}: a +inf token must win its row"
            )


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_a_row_without_any_logit_is_an_error_never_token_0(chain: str) -> None:
    for label, scores, ids, degenerate in CASES:
        if label not in ("all_neg_inf_row", "nan_row"):
            continue
        for pipe in pipelines(CHAINS[chain], scores.shape[0]):
            with pytest.raises(EmptyRowError) as info:
                pipe.next_tokens(ids, scores)
            assert f"rows {degenerate}" in str(info.value)
            assert "model" in str(info.value), str(info.value)


def emptying_chain() -> dict[str, Any]:
    """Masks that together remove every token of a 12-token vocabulary."""
    return {
        "order": "listed",
        "processors": [
            {"suppress_tokens": list(range(0, 12, 2))},
            {"bad_words_ids": [[t] for t in range(1, 12, 2)]},
            {"temperature": 0.8},
        ],
    }


@pytest.mark.parametrize("fast", [True, False])
def test_masks_that_remove_every_token_keep_the_models_top_token(fast: bool) -> None:
    scores = base(4, 12, seed=5)
    scores[:, 0] = -50.0  # token 0 is never the model's choice, so a silent 0 would show
    pipe = Pipeline.from_config(emptying_chain(), seeds=torch.arange(4), fast_path=fast)
    tokens = pipe.next_tokens(history(4), scores)
    assert torch.equal(tokens, scores.argmax(dim=-1))
    assert not bool((tokens == 0).any())


@pytest.mark.parametrize("fast", [True, False])
def test_masks_that_remove_every_token_name_the_processor_under_the_error_policy(
    fast: bool,
) -> None:
    pipe = Pipeline.from_config(
        emptying_chain(), on_empty_row="error", seeds=torch.arange(4), fast_path=fast
    )
    with pytest.raises(
        EmptyRowError,
        match=r"rows \[0, 1, 2, 3\] have no token left after processor 'bad_words_ids' \(stage logits\)",
    ):
        pipe.next_tokens(history(4), base(4, 12, seed=5))


def test_only_the_emptied_rows_fall_back() -> None:
    scores = base(3, 12, seed=6)
    scores[1, 0] = -50.0
    chain = {
        "order": "listed",
        "processors": [{"suppress_tokens": [int(scores[1].argmax())]}, {"top_k": 1}],
        # Greedy: the expected tokens are argmaxes (an unseeded sampler made the test depend on
        # how much of torch's RNG earlier tests had used).
        "selector": "greedy",
    }
    pipe = Pipeline.from_config(chain)
    # Row 1's only survivor is removed by a later step: everything goes for row 1, nothing for the others.
    tokens = pipe.select(
        torch.where(torch.arange(3).unsqueeze(-1) == 1, NEG_INF, scores),
        pipe.step_context(history(3)),
        raw=scores,
    )
    assert torch.equal(tokens, scores.argmax(dim=-1))


def test_select_without_raw_logits_cannot_fall_back() -> None:
    pipe = Pipeline.from_config([])
    empty = torch.full((2, 5), NEG_INF)
    with pytest.raises(EmptyRowError, match="rows \\[0, 1\\]"):
        pipe.select(empty, pipe.step_context(history(2)))


def test_unknown_empty_row_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="on_empty_row must be one of"):
        Pipeline.from_config([], on_empty_row="zero")


def test_renormalize_keeps_degenerate_rows_meaningful() -> None:
    scores = torch.tensor([[0.0, 1.0, 2.0], [NEG_INF, NEG_INF, NEG_INF], [1.0, POS_INF, POS_INF]])
    out = build("renormalize_logits").apply(scores, context(history(3), 3))
    assert torch.allclose(out[0], scores[0].log_softmax(-1))
    assert bool(torch.isneginf(out[1]).all())
    half = torch.log(torch.tensor(0.5))
    assert out[2, 0] == NEG_INF and torch.allclose(out[2, 1:], torch.stack([half, half]))


@pytest.mark.parametrize("selector", sorted(build_registry().selectors))
def test_every_installed_selector_gets_safe_rows(selector: str) -> None:
    """Whatever selector ends the chain (third-party ones too), the guard hands it rows it can sample."""
    torch.manual_seed(0)
    for label, scores, ids, _ in CASES:
        if label in ("all_neg_inf_row", "nan_row"):
            continue
        config = {"processors": [{"temperature": 0.7}, {"top_k": 5}], "selector": selector}
        pipe = Pipeline.from_config(config, seeds=torch.arange(scores.shape[0]) * 5 + 1)
        tokens = pipe.next_tokens(ids, scores)
        picked = scores.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
        assert not bool(torch.isnan(picked).any()), f"{selector} on {label}: picked a NaN token"
        assert bool(((tokens >= 0) & (tokens < scores.shape[-1])).all()), f"{selector} on {label}"
