"""Differential tests: each token-level built-in against transformers' own class on the same random inputs.

Tolerances: fp32 finite values within 1e-5 relative (atol 1e-6 for values near
0); fp16 and bf16 within one unit in the last place of the half type
(rtol 1e-3 and 1e-2), since both sides compute in the input dtype and only the
order of a few additions may differ. The -inf, +inf and nan masks must be identical.
"""

from __future__ import annotations

import random

import pytest
import torch
from _processor_cases import BUILDERS, make_inputs, random_scores

from logitkit import StepContext

TOLERANCE = {torch.float32: (1e-5, 1e-6), torch.float16: (1e-3, 1e-3), torch.bfloat16: (1e-2, 1e-2)}

# (batch, vocab, history length): batches 1..16 in every dtype, plus one Qwen-sized vocab in fp32.
SHAPES = [(1, 50, 9), (3, 50, 20), (16, 97, 33), (8, 1000, 64)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16]
GRID = [(shape, dtype) for shape in SHAPES for dtype in DTYPES] + [((2, 151_936, 40), torch.float32)]


def assert_same(ours: torch.Tensor, theirs: torch.Tensor, dtype: torch.dtype) -> None:
    assert ours.dtype == theirs.dtype == dtype
    assert ours.shape == theirs.shape
    for name, test in (("-inf", torch.isneginf), ("+inf", torch.isposinf), ("nan", torch.isnan)):
        assert torch.equal(test(ours), test(theirs)), f"different {name} masks"
    finite = torch.isfinite(theirs)
    rtol, atol = TOLERANCE[dtype]
    torch.testing.assert_close(ours[finite], theirs[finite], rtol=rtol, atol=atol)


@pytest.mark.parametrize(("shape", "dtype"), GRID, ids=[f"{'x'.join(map(str, s))}-{d}" for s, d in GRID])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_matches_transformers(name: str, shape: tuple[int, int, int], dtype: torch.dtype) -> None:
    batch, vocab, length = shape
    rng = random.Random(f"{name}-{shape}-{dtype}")
    trials = 1 if vocab > 10_000 else 4
    for _ in range(trials):
        inputs = make_inputs(rng, batch, vocab, rng.randint(1, length))
        case = BUILDERS[name](rng, inputs)
        scores = random_scores(rng, batch, vocab, dtype, invalid=name == "remove_invalid_values")
        assert case.theirs is not None
        expected = case.theirs(case.ctx.input_ids.clone(), scores.clone())
        assert_same(case.ours.apply(scores, case.ctx), expected, dtype)


def test_histories_really_repeat() -> None:
    """The inputs exercise the interesting branches: bans and penalties actually fire."""
    rng = random.Random(0)
    changed = dict.fromkeys(("no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids", "sequence_bias"), 0)
    for name in changed:
        for _ in range(20):
            inputs = make_inputs(rng, 4, 50, 20)
            case = BUILDERS[name](rng, inputs)
            scores = random_scores(rng, 4, 50, torch.float32)
            changed[name] += int(not torch.equal(case.ours.apply(scores, case.ctx), scores))
    assert all(count >= 10 for count in changed.values()), changed


def test_batched_prefix_callable_matches_transformers_per_row_callable() -> None:
    """A batched constraint (one tensor op for all rows) gives what transformers' per-row loop gives."""
    from transformers import PrefixConstrainedLogitsProcessor

    from logitkit_builtins.masks import prefix_allowed_tokens

    vocab, beams = 40, 2
    ids = torch.randint(0, vocab, (6, 7), generator=torch.Generator().manual_seed(1))
    scores = torch.randn(6, vocab, generator=torch.Generator().manual_seed(2))

    def per_row(batch_id: int, row: torch.Tensor) -> list[int]:
        return sorted({int(row[-1]), (int(row[-2]) + batch_id) % vocab})

    def batched(input_ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
        batch_id = torch.arange(input_ids.shape[0]) // beams
        allowed = torch.zeros(input_ids.shape[0], vocab_size, dtype=torch.bool)
        allowed.scatter_(1, input_ids[:, -1:], True)
        return allowed.scatter(1, ((input_ids[:, -2] + batch_id) % vocab_size).unsqueeze(1), True)

    from logitkit import StepContext

    ctx = StepContext(input_ids=ids, prompt_lengths=3, steps=4)
    ours = prefix_allowed_tokens(batched, num_beams=beams).apply(scores, ctx)
    assert torch.equal(ours, PrefixConstrainedLogitsProcessor(per_row, beams)(ids, scores.clone()))


def test_prefix_constraint_with_no_live_token_keeps_the_constraint() -> None:
    """When every beam of a prompt has only -inf among its allowed tokens, the allowed set gets 0 (as transformers)."""
    from transformers import PrefixConstrainedLogitsProcessor

    from logitkit import StepContext
    from logitkit_builtins.masks import prefix_allowed_tokens

    ids = torch.zeros(2, 3, dtype=torch.long)
    scores = torch.randn(2, 10)
    scores[:, :3] = float("-inf")
    fn = lambda batch_id, row: [0, 1, 2]  # noqa: E731
    ours = prefix_allowed_tokens(per_row_fn=fn, num_beams=1).apply(scores, StepContext(ids, 3, 0))
    assert torch.equal(ours, PrefixConstrainedLogitsProcessor(fn, 1)(ids, scores.clone()))
    assert torch.equal(ours[:, :3], torch.zeros(2, 3))


# -- where logitkit differs on purpose (documented in docs/processors/) ---------------------


def test_temperature_zero_is_greedy_where_transformers_refuses_it() -> None:
    from _processor_cases import build
    from transformers import TemperatureLogitsWarper

    with pytest.raises(ValueError):
        TemperatureLogitsWarper(0.0)
    scores = torch.tensor([[1.0, 3.0, 3.0, -2.0], [0.5, -1.0, 0.2, 0.1]])
    out = build("temperature", {"temperature": 0.0}).apply(scores, _ctx(torch.zeros(2, 1, dtype=torch.long)))
    assert torch.equal(torch.isfinite(out), torch.tensor([[False, True, False, False], [True, False, False, False]]))
    assert torch.equal(out.argmax(-1), scores.argmax(-1))


def _ctx(ids: torch.Tensor) -> StepContext:
    return StepContext(input_ids=ids, prompt_lengths=ids.shape[1], steps=0)


def test_repetition_penalty_normalize_does_not_depend_on_the_logits_offset() -> None:
    from _processor_cases import build

    ids = torch.tensor([[1, 2, 3, 1]])
    scores = torch.tensor([[0.3, 0.2, -0.1, 1.5, -2.0]])
    plain = build("repetition_penalty", {"penalty": 2.0})
    normalized = build("repetition_penalty", {"penalty": 2.0, "normalize": True})
    shifted = scores + 5.0
    # The raw rule gives a different distribution once every logit is shifted by a constant ...
    assert not torch.allclose(plain.apply(scores, _ctx(ids)).softmax(-1), plain.apply(shifted, _ctx(ids)).softmax(-1))
    # ... the normalized rule does not, and it multiplies the seen tokens' log-probabilities by the penalty.
    out = normalized.apply(scores, _ctx(ids))
    torch.testing.assert_close(out, normalized.apply(shifted, _ctx(ids)))
    logp = scores.log_softmax(-1)
    torch.testing.assert_close(out[0, [1, 2, 3]], logp[0, [1, 2, 3]] * 2.0)
    torch.testing.assert_close(out[0, [0, 4]], logp[0, [0, 4]])


def test_bad_words_turn_an_infinite_banned_score_into_minus_inf() -> None:
    """transformers adds -inf and gets nan for a banned +inf score; logitkit masks it to -inf."""
    from _processor_cases import build
    from transformers import NoBadWordsLogitsProcessor

    ids = torch.tensor([[4, 5]])
    scores = torch.tensor([[0.0, float("inf"), 1.0, 2.0]])
    theirs = NoBadWordsLogitsProcessor([[1]])(ids, scores.clone())
    ours = build("bad_words_ids", {"bad_words_ids": [[1]]}).apply(scores, _ctx(ids))
    assert torch.isnan(theirs[0, 1]) and torch.isneginf(ours[0, 1])
    assert torch.equal(ours[0, [0, 2, 3]], scores[0, [0, 2, 3]])


def test_sequence_bias_ignores_tokens_outside_the_vocab_instead_of_raising() -> None:
    from _processor_cases import build
    from transformers import SequenceBiasLogitsProcessor

    ids = torch.tensor([[1, 2]])
    scores = torch.zeros(1, 5)
    with pytest.raises(ValueError):
        SequenceBiasLogitsProcessor([[[9], 1.0], [[3], -1.0]])(ids, scores.clone())
    out = build("sequence_bias", {"sequence_bias": [[[9], 1.0], [[3], -1.0]]}).apply(scores, _ctx(ids))
    assert out.tolist() == [[0.0, 0.0, 0.0, -1.0, 0.0]]


@pytest.mark.parametrize("name", ["encoder_repetition_penalty", "encoder_no_repeat_ngram_size"])
def test_encoder_processors_use_the_prompt_when_there_is_no_encoder(name: str) -> None:
    """Decoder-only: generate() hands the prompt to transformers as the encoder ids; logitkit reads it from the context."""
    from _processor_cases import build
    from transformers import (
        EncoderNoRepeatNGramLogitsProcessor,
        EncoderRepetitionPenaltyLogitsProcessor,
    )

    ids = torch.randint(0, 6, (3, 12), generator=torch.Generator().manual_seed(4))
    scores = torch.randn(3, 30, generator=torch.Generator().manual_seed(5))
    prompt = ids[:, :7]
    if name == "encoder_repetition_penalty":
        ours, theirs = build(name, {"penalty": 1.6}), EncoderRepetitionPenaltyLogitsProcessor(1.6, prompt)
    else:
        ours, theirs = build(name, {"ngram_size": 2}), EncoderNoRepeatNGramLogitsProcessor(2, prompt)
    out = ours.apply(scores, StepContext(input_ids=ids, prompt_lengths=7, steps=5))
    assert not torch.equal(out, scores)
    assert torch.equal(out, theirs(ids, scores.clone()))


@pytest.mark.parametrize("name", ["repetition_penalty", "no_repeat_ngram_size", "encoder_repetition_penalty"])
def test_negative_padding_ids_are_ignored(name: str) -> None:
    """-100 style markers in the history are skipped; transformers would index with them and fail.

    The reference replaces them by an id past the vocab, which transformers itself ignores.
    """
    from _processor_cases import build
    from transformers import (
        EncoderRepetitionPenaltyLogitsProcessor,
        NoRepeatNGramLogitsProcessor,
        RepetitionPenaltyLogitsProcessor,
    )

    vocab = 20
    gen = torch.Generator().manual_seed(9)
    ids = torch.randint(0, 4, (4, 15), generator=gen)
    ids[:, :3] = -100
    ids[1, 7] = -100
    ids[3] = -100  # a row of padding only
    scores = torch.randn(4, vocab, generator=gen)
    past_vocab = ids.masked_fill(ids < 0, vocab + 5)
    ctx = StepContext(input_ids=ids, prompt_lengths=15, steps=0, encoder_input_ids=ids)
    reference = {
        "repetition_penalty": (lambda: build(name, {"penalty": 1.7}), RepetitionPenaltyLogitsProcessor(1.7)),
        "no_repeat_ngram_size": (lambda: build(name, {"ngram_size": 2}), NoRepeatNGramLogitsProcessor(2)),
        "encoder_repetition_penalty": (lambda: build(name, {"penalty": 1.7}), None),
    }
    ours, theirs = reference[name]
    if theirs is None:
        # Each row against transformers given only that row's real encoder ids.
        out = ours().apply(scores, ctx)
        for row in range(4):
            real = ids[row][ids[row] >= 0]
            expected = scores[row : row + 1]
            if real.numel():
                expected = EncoderRepetitionPenaltyLogitsProcessor(1.7, real[None])(ids[row : row + 1], expected.clone())
            assert torch.equal(out[row : row + 1], expected)
        return
    assert torch.equal(ours().apply(scores, ctx), theirs(past_vocab, scores.clone()))
