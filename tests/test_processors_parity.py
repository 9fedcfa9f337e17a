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

    ctx = StepContext(input_ids=ids, prompt_length=3, step=4)
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
