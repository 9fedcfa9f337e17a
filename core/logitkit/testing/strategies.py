"""Hypothesis strategies for processor inputs: logits tensors, token histories, whole steps.

Tensors are built from a drawn seed plus drawn *patterns* (dtype, scale, where
the -inf go, which values are extreme), so hypothesis explores the shapes and
patterns that break processors while each tensor stays cheap to build.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import strategies as st

#: The dtypes a processor must handle.
DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.bfloat16)
#: Where -inf goes in a row: nowhere, scattered, all but one token, or in a whole row.
NEG_INF_PATTERNS = ("none", "scattered", "all_but_one", "whole_row")


@dataclass(frozen=True)
class StepCase:
    """One decoding step's inputs: scores, the sequence so far, the prompt length and per-row seeds."""

    scores: torch.Tensor
    input_ids: torch.Tensor
    prompt_length: int
    seeds: torch.Tensor

    @property
    def batch_size(self) -> int:
        return int(self.scores.shape[0])

    @property
    def vocab_size(self) -> int:
        return int(self.scores.shape[-1])


def dtypes(choices: tuple[torch.dtype, ...] = DTYPES) -> st.SearchStrategy[torch.dtype]:
    return st.sampled_from(choices)


def _extreme(dtype: torch.dtype) -> float:
    # Large but finite in every dtype, and far enough from the max that a subtraction stays finite.
    return float(torch.finfo(dtype).max) / 8


@st.composite
def logits(
    draw: st.DrawFn,
    *,
    batch: tuple[int, int] = (1, 4),
    vocab: tuple[int, int] = (2, 48),
    dtypes: tuple[torch.dtype, ...] = DTYPES,
    neg_inf: bool = True,
    extreme: bool = True,
    allow_nan: bool = False,
    whole_row_neg_inf: bool = False,
) -> torch.Tensor:
    """A ``[batch, vocab]`` logits tensor.

    ``neg_inf`` adds -inf patterns (scattered, all but one token, and with
    ``whole_row_neg_inf`` a row with no finite value at all); ``extreme`` adds
    values near the dtype's range and exact ties; ``allow_nan`` scatters NaNs.
    """
    rows = draw(st.integers(*batch))
    cols = draw(st.integers(*vocab))
    dtype = draw(st.sampled_from(dtypes))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    scale = draw(st.sampled_from((0.01, 1.0, 5.0, 30.0)))
    values = torch.randn(rows, cols, generator=gen, dtype=torch.float64) * scale
    if extreme and draw(st.booleans()):
        big = _extreme(dtype)
        kind = draw(st.sampled_from(("huge_top", "huge_negative", "ties", "spread")))
        if kind == "huge_top":
            values[:, 0] = big
        elif kind == "huge_negative":
            values[:, -1] = -big
        elif kind == "ties":
            values[:, : max(2, cols // 2)] = values[:, :1]
        else:
            values = values * min(1e4, big)
    limit = _extreme(dtype)
    # At most finfo.max / 8, so dividing by a temperature down to 1/8 stays finite; then round
    # to the dtype before placing -inf and NaN.
    values = values.clamp(-limit, limit).to(dtype).to(torch.float64)
    patterns = NEG_INF_PATTERNS if whole_row_neg_inf else NEG_INF_PATTERNS[:-1]
    pattern = draw(st.sampled_from(patterns)) if neg_inf else "none"
    if pattern == "scattered":
        mask = torch.rand(rows, cols, generator=gen) < 0.3
        mask[:, 0] = False  # keep one finite value per row
        values = values.masked_fill(mask, float("-inf"))
    elif pattern == "all_but_one":
        keep = torch.randint(0, cols, (rows, 1), generator=gen)
        values = torch.full_like(values, float("-inf")).scatter(-1, keep, values.gather(-1, keep))
    elif pattern == "whole_row":
        values[rows - 1] = float("-inf")
    if allow_nan and draw(st.booleans()):
        values = values.masked_fill(torch.rand(rows, cols, generator=gen) < 0.1, float("nan"))
    return values.to(dtype)


@st.composite
def histories(
    draw: st.DrawFn, *, batch: int, vocab: int, length: tuple[int, int] = (1, 16), alphabet: int = 4
) -> tuple[torch.Tensor, int]:
    """``(input_ids [batch, length], prompt_length)``: token ids drawn from a small alphabet so repeats are common."""
    total = draw(st.integers(*length))
    prompt = draw(st.integers(1, total))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    letters = torch.randperm(vocab, generator=gen)[: max(1, min(alphabet, vocab))]
    picks = torch.randint(0, letters.numel(), (batch, total), generator=gen)
    return letters[picks], prompt


@st.composite
def step_cases(
    draw: st.DrawFn,
    *,
    batch: tuple[int, int] = (1, 4),
    vocab: tuple[int, int] = (2, 48),
    dtypes: tuple[torch.dtype, ...] = DTYPES,
    length: tuple[int, int] = (1, 16),
    allow_nan: bool = False,
) -> StepCase:
    """Scores, a history with repeats, a prompt length and distinct per-row seeds."""
    scores = draw(logits(batch=batch, vocab=vocab, dtypes=dtypes, allow_nan=allow_nan))
    input_ids, prompt_length = draw(
        histories(batch=scores.shape[0], vocab=scores.shape[1], length=length)
    )
    seeds = torch.tensor(
        draw(
            st.lists(
                st.integers(0, 2**62),
                min_size=scores.shape[0],
                max_size=scores.shape[0],
                unique=True,
            )
        ),
        dtype=torch.int64,
    )
    return StepCase(scores, input_ids, prompt_length, seeds)
