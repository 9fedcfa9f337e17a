"""Hypothesis properties of every token-level built-in: no mutation, same shape and dtype, rows independent."""

from __future__ import annotations

import dataclasses
import random

import pytest
import torch
from _processor_cases import BUILDERS, Case, Inputs, build, ctx_of, make_inputs, random_scores
from hypothesis import given, settings
from hypothesis import strategies as st

from logitkit import StepContext

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def content_only_prefix(rng: random.Random, x: Inputs) -> Case:
    """A constraint that reads only the row itself, so slicing the batch cannot change its answer."""

    def allowed(input_ids: torch.Tensor, vocab: int) -> torch.Tensor:
        mask = torch.zeros(input_ids.shape[0], vocab, dtype=torch.bool)
        mask.scatter_(1, input_ids[:, -1:] % vocab, True)
        return mask.scatter(1, (input_ids[:, :1] * 3 + 1) % vocab, True)

    return Case(build("prefix_allowed_tokens", {}, fn=allowed), ctx_of(x), None)


CASES = {**BUILDERS, "prefix_allowed_tokens": content_only_prefix}


def rows_of(ctx: StepContext, rows: list[int]) -> StepContext:
    """The context of a sub-batch: per-row tensors sliced, per-prompt tensors mapped to their rows."""
    batch = ctx.input_ids.shape[0]
    index = torch.tensor(rows)

    def pick(tensor: torch.Tensor | None) -> torch.Tensor | None:
        if tensor is None:
            return None
        return tensor[index // (batch // tensor.shape[0])]

    return dataclasses.replace(
        ctx,
        input_ids=ctx.input_ids[index],
        prompt_lengths=ctx.prompt_lengths[index],
        steps=ctx.steps[index],
        attention_mask=pick(ctx.attention_mask),
        encoder_input_ids=pick(ctx.encoder_input_ids),
    )


def snapshot(ctx: StepContext) -> list[torch.Tensor]:
    return [t.clone() for t in (ctx.input_ids, ctx.attention_mask, ctx.encoder_input_ids) if t is not None]


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)) and torch.equal(a.isnan(), b.isnan())


@pytest.mark.parametrize("name", sorted(CASES))
@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    batch=st.integers(1, 6),
    vocab=st.integers(5, 80),
    length=st.integers(1, 14),
    dtype=st.sampled_from(DTYPES),
    data=st.data(),
)
def test_properties(name: str, seed: int, batch: int, vocab: int, length: int, dtype: torch.dtype, data: st.DataObject) -> None:
    rng = random.Random(seed)
    case = CASES[name](rng, make_inputs(rng, batch, vocab, length))
    scores = random_scores(rng, batch, vocab, dtype, invalid=name == "remove_invalid_values")
    scores_before, ctx_before = scores.clone(), snapshot(case.ctx)

    out = case.ours.apply(scores, case.ctx)

    assert same(scores, scores_before), "scores were modified in place"
    assert all(torch.equal(a, b) for a, b in zip(snapshot(case.ctx), ctx_before, strict=True)), "context modified"
    assert out.shape == scores.shape and out.dtype == scores.dtype and out.device == scores.device

    # Any sub-batch, in any order, gets exactly the rows it had in the full batch.
    rows = data.draw(st.lists(st.integers(0, batch - 1), min_size=1, max_size=batch, unique=True), label="rows")
    alone = case.ours.apply(scores[rows], rows_of(case.ctx, rows))
    assert same(alone, out[rows]), f"rows {rows} depend on the rest of the batch"
