"""The four core warpers give transformers' numbers, and the pipeline runs inside transformers' generate()."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LogitsProcessorList,
    MinPLogitsWarper,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from logitkit import Pipeline

FOUR = [{"temperature": 0.7}, {"top_k": 50}, {"top_p": 0.9}, {"min_p": 0.05}]


def hf_four() -> LogitsProcessorList:
    return LogitsProcessorList(
        [TemperatureLogitsWarper(0.7), TopKLogitsWarper(50), TopPLogitsWarper(0.9), MinPLogitsWarper(0.05)]
    )


def assert_same_scores(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert torch.equal(torch.isinf(ours), torch.isinf(theirs)), "different -inf masks"
    finite = torch.isfinite(theirs)
    torch.testing.assert_close(ours[finite], theirs[finite], rtol=1e-5, atol=0)


@pytest.mark.parametrize("seed", range(5))
def test_four_warpers_match_transformers_batch4_vocab32000(reg, seed: int) -> None:  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(4, 32000, generator=gen) * 3
    input_ids = torch.randint(0, 32000, (4, 12), generator=gen)
    pipe = Pipeline.from_config(FOUR)
    before = scores.clone()
    ours = pipe(input_ids, scores)
    assert torch.equal(scores, before), "the pipeline mutated its input"
    assert_same_scores(ours, hf_four()(input_ids, scores.clone()))


def test_each_warper_alone_matches(reg) -> None:  # type: ignore[no-untyped-def]
    gen = torch.Generator().manual_seed(7)
    scores = torch.randn(3, 500, generator=gen) * 4
    ids = torch.zeros(3, 1, dtype=torch.long)
    for ours_cfg, theirs in [
        ({"temperature": 1.3}, TemperatureLogitsWarper(1.3)),
        ({"top_k": 7}, TopKLogitsWarper(7)),
        ({"top_p": 0.5}, TopPLogitsWarper(0.5)),
        ({"min_p": 0.2}, MinPLogitsWarper(0.2)),
        ({"name": "top_p", "top_p": 0.01, "min_tokens_to_keep": 3}, TopPLogitsWarper(0.01, min_tokens_to_keep=3)),
    ]:
        assert_same_scores(Pipeline.from_config([ours_cfg])(ids, scores), theirs(ids, scores.clone()))


def tiny_gpt2() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    return GPT2LMHeadModel(config).eval()


def test_as_hf_runs_inside_transformers_generate(reg) -> None:  # type: ignore[no-untyped-def]
    model = tiny_gpt2()
    input_ids = torch.tensor([[1, 2, 3, 4]])
    pipe = Pipeline.from_config([{"top_k": 1}])
    out = model.generate(
        input_ids, logits_processor=pipe.as_hf(), do_sample=True, max_new_tokens=8, top_k=None, pad_token_id=0
    )
    greedy = model.generate(input_ids, do_sample=False, max_new_tokens=8, pad_token_id=0)
    # top_k=1 leaves one token per step, so sampling must reproduce greedy decoding.
    assert out.shape == (1, 12)
    assert torch.equal(out, greedy)


def test_next_tokens_with_greedy_selector_is_argmax(reg) -> None:  # type: ignore[no-untyped-def]
    scores = torch.randn(5, 300, generator=torch.Generator().manual_seed(3))
    pipe = Pipeline.from_config({"processors": [{"temperature": 0.5}], "selector": "greedy"})
    assert torch.equal(pipe.next_tokens(torch.zeros(5, 2, dtype=torch.long), scores), scores.argmax(-1))


def test_sample_selector_with_a_seed_is_repeatable_and_stays_in_the_nucleus(reg) -> None:  # type: ignore[no-untyped-def]
    scores = torch.randn(6, 1000, generator=torch.Generator().manual_seed(4)) * 3
    ids = torch.zeros(6, 3, dtype=torch.long)
    cfg = {"processors": FOUR, "selector": {"name": "sample", "seed": 11}}
    first = Pipeline.from_config(cfg).next_tokens(ids, scores)
    second = Pipeline.from_config(cfg).next_tokens(ids, scores)
    assert torch.equal(first, second)
    kept = torch.isfinite(Pipeline.from_config(FOUR)(ids, scores))
    assert bool(kept.gather(-1, first.unsqueeze(-1)).all())
