"""Hypothesis properties of guidance_scale and watermarking: no mutation, same shape and dtype, rows independent."""

from __future__ import annotations

from typing import Any

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from logitkit import Processor, StepContext
from logitkit_builtins.guidance import Guidance, GuidanceConfig
from logitkit_builtins.watermark import Watermarking, WatermarkingConfig

DTYPES = st.sampled_from([torch.float32, torch.float16, torch.bfloat16])


class FakeModel:
    """A deterministic causal 'model' whose rows never see each other: logits are running sums of token embeddings.

    Its cache is the running sum, so the incremental (cached) and full passes agree.
    """

    def __init__(self, vocab: int, seed: int) -> None:
        self.embedding = torch.randn(
            vocab + 64, vocab, generator=torch.Generator().manual_seed(seed)
        )

    def __call__(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, use_cache: bool, cache: Any
    ) -> dict[str, Any]:
        weights = attention_mask[:, -input_ids.shape[1] :].unsqueeze(-1).float()
        running = (self.embedding[input_ids] * weights).cumsum(dim=1)
        if cache is not None:
            running = running + cache.unsqueeze(1)
        return {"logits": running, "cache": running[:, -1] if use_cache else None}


def _histories(seed: int, batch: int, vocab: int, length: int) -> torch.Tensor:
    ids = torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(seed))
    if batch > 1:
        ids[-1] = ids[0]  # a duplicate row
    return ids


def _run(processor: Processor, ids: torch.Tensor, scores: list[torch.Tensor], ctx_extra: dict[str, Any], model: Any,
         prompt: int) -> list[torch.Tensor]:  # fmt: skip
    """Apply over several steps (one scores tensor per step), checking the no-mutation contract on the way."""
    outputs = []
    for step, step_scores in enumerate(scores):
        history = ids[:, : prompt + step]
        ctx = StepContext(history, prompt, step, model=model, extra=ctx_extra)
        before_scores, before_ids = step_scores.clone(), history.clone()
        before_extra = {k: v.clone() for k, v in ctx_extra.items()}
        out = processor.apply(step_scores, ctx)
        assert torch.equal(step_scores, before_scores), "scores modified in place"
        assert torch.equal(history, before_ids), "input_ids modified in place"
        assert all(torch.equal(v, before_extra[k]) for k, v in ctx_extra.items()), (
            "context modified in place"
        )
        assert out.shape == step_scores.shape and out.dtype == step_scores.dtype
        outputs.append(out)
    return outputs


def _check_rows_independent(make: Any, ids: torch.Tensor, scores: list[torch.Tensor], extra: dict[str, Any],
                            model: Any, prompt: int, rows: list[int]) -> None:  # fmt: skip
    full = _run(make(), ids, scores, extra, model, prompt)
    index = torch.tensor(rows)
    sub_extra = {k: v[index] for k, v in extra.items()}
    sub = _run(make(), ids[index], [s[index] for s in scores], sub_extra, model, prompt)
    for whole, part in zip(full, sub, strict=True):
        torch.testing.assert_close(whole[index], part, rtol=0, atol=0, equal_nan=True)


def _scores(
    seed: int, steps: int, batch: int, vocab: int, dtype: torch.dtype
) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed + 1)
    return [(torch.randn(batch, vocab, generator=gen) * 3).to(dtype) for _ in range(steps)]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31), batch=st.integers(1, 5), vocab=st.integers(2, 60), prompt=st.integers(1, 6),
    scale=st.floats(0, 4), use_cache=st.booleans(), negative=st.booleans(), dtype=DTYPES, data=st.data(),
)  # fmt: skip
def test_guidance_properties(seed: int, batch: int, vocab: int, prompt: int, scale: float, use_cache: bool,
                             negative: bool, dtype: torch.dtype, data: st.DataObject) -> None:  # fmt: skip
    steps = 3
    ids = _histories(seed, batch, vocab, prompt + steps)
    extra: dict[str, Any] = {}
    if negative:
        extra["unconditional_ids"] = _histories(seed + 2, batch, vocab, 3)
        extra["unconditional_attention_mask"] = torch.ones(batch, 3, dtype=torch.long)
    rows = data.draw(st.lists(st.integers(0, batch - 1), min_size=1, max_size=batch, unique=True))

    def make() -> Guidance:
        return Guidance(GuidanceConfig(guidance_scale=scale, use_cache=use_cache))

    _check_rows_independent(
        make,
        ids,
        _scores(seed, steps, batch, vocab, dtype),
        extra,
        FakeModel(vocab, seed),
        prompt,
        rows,
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31), batch=st.integers(1, 5), vocab=st.integers(2, 80), prompt=st.integers(1, 6),
    seeding=st.sampled_from(["lefthash", "selfhash"]), width=st.integers(1, 3), ratio=st.floats(0.05, 0.95),
    bias=st.floats(0, 5), dtype=DTYPES, data=st.data(),
)  # fmt: skip
def test_greenlist_properties(seed: int, batch: int, vocab: int, prompt: int, seeding: str, width: int, ratio: float,
                              bias: float, dtype: torch.dtype, data: st.DataObject) -> None:  # fmt: skip
    steps = 2
    ids = _histories(seed, batch, vocab, prompt + steps)
    rows = data.draw(st.lists(st.integers(0, batch - 1), min_size=1, max_size=batch, unique=True))
    config = WatermarkingConfig(
        greenlist_ratio=ratio, bias=bias, seeding_scheme=seeding, context_width=width
    )
    _check_rows_independent(
        lambda: Watermarking(config),
        ids,
        _scores(seed, steps, batch, vocab, dtype),
        {},
        None,
        prompt,
        rows,
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31), batch=st.integers(1, 5), vocab=st.integers(2, 80), prompt=st.integers(1, 6),
    ngram_len=st.integers(2, 5), keys=st.lists(st.integers(0, 2**40), min_size=1, max_size=4),
    history=st.integers(1, 8), skip_first=st.booleans(), dtype=DTYPES, data=st.data(),
)  # fmt: skip
def test_synthid_properties(seed: int, batch: int, vocab: int, prompt: int, ngram_len: int, keys: list[int],
                            history: int, skip_first: bool, dtype: torch.dtype, data: st.DataObject) -> None:  # fmt: skip
    steps = 6
    ids = _histories(seed, batch, min(vocab, 4), prompt + steps)  # few tokens: repeated contexts
    rows = data.draw(st.lists(st.integers(0, batch - 1), min_size=1, max_size=batch, unique=True))
    config = WatermarkingConfig(scheme="synthid", keys=keys, ngram_len=ngram_len, context_history_size=history,
                                skip_first_ngram_calls=skip_first)  # fmt: skip
    _check_rows_independent(
        lambda: Watermarking(config),
        ids,
        _scores(seed, steps, batch, vocab, dtype),
        {},
        None,
        prompt,
        rows,
    )
