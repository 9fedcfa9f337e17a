"""Selectors: the last element of every chain picks one token per row."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field

from logitkit import NewRows, ProcessorConfig, RowState, Selector, StepContext
from logitkit.fastpath import CandidateView
from logitkit.sampling import fill_seeds, race

NEG_INF = float("-inf")
#: Race only the surviving tokens when at most 1/this of the vocabulary survives.
SPARSE_FRACTION = 8


class Greedy(Selector):
    """Pick the highest-scoring token (the first one on ties, like torch.argmax)."""

    name = "greedy"

    def select(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores.argmax(dim=-1)

    def select_sorted(self, view: CandidateView, ctx: StepContext) -> torch.Tensor:
        # Like argmax on dense scores: the lowest token id among the best-scoring ones.
        best = view.values == view.values.amax(dim=-1, keepdim=True)
        return torch.where(best, view.token_ids, torch.iinfo(torch.int64).max).amin(dim=-1)


class SampleConfig(ProcessorConfig):
    seed: int | None = Field(
        default=None, ge=0, description="Seed for every row; unset draws seeds from torch's RNG."
    )


class Sample(Selector):
    """Sample from softmax(scores) by the exponential race, with per-row seeds (batch-invariant)."""

    name = "sample"
    # Its state is each row's seed, which a call on its own reads from the context alike.
    seeds_only_state = True
    Config = SampleConfig
    primary = "seed"

    def init_rows(self, rows: NewRows) -> RowState:
        # Seeds drawn once per row when it joins, so a row's draws do not depend on its batch.
        return {"seeds": fill_seeds(rows.seeds, rows.count, self.config.seed).to(rows.device)}

    def seeds_for(self, ctx: StepContext) -> torch.Tensor:
        """Per-row seeds: the row state's, else (a call on its own) the context's, the config's or fresh ones."""
        state = ctx.row_state(self)
        if state is not None:
            return state["seeds"]
        return fill_seeds(ctx.seeds, ctx.batch_size, self.config.seed)

    def select(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        seeds = self.seeds_for(ctx)
        # After truncation few tokens are left: race only those (noise is keyed on token ids,
        # so the draw is the full row's), instead of drawing noise for the whole vocabulary.
        left = int((scores > NEG_INF).sum(dim=-1).max())
        if 0 < left <= scores.shape[-1] // SPARSE_FRACTION:
            values, token_ids = torch.topk(scores, left, dim=-1)
            column = race(values, seeds, ctx.steps, token_ids=token_ids).to(token_ids.device)
            return token_ids.gather(-1, column.unsqueeze(-1)).squeeze(-1)
        return race(scores, seeds, ctx.steps).to(scores.device)

    def select_sorted(self, view: CandidateView, ctx: StepContext) -> torch.Tensor:
        # The noise is keyed on token ids, so racing the view draws the dense path's token.
        column = race(
            view.values,
            self.seeds_for(ctx),
            ctx.steps,
            token_ids=view.token_ids,
            vocab=view.vocab_size,
        )
        return view.token_ids.gather(-1, column.to(view.token_ids.device).unsqueeze(-1)).squeeze(-1)


class Multinomial(Selector):
    """Sample with torch.multinomial over softmax(scores), exactly as transformers' sampling step does.

    It draws from torch's global RNG, so ``torch.manual_seed`` reproduces a
    transformers ``generate(do_sample=True)`` run token for token. Rows are not
    batch-invariant: use ``sample`` unless you need that parity.
    """

    name = "multinomial"

    def select(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        probs = torch.nn.functional.softmax(scores, dim=-1)
        return torch.multinomial(probs, num_samples=1).squeeze(1)


def register_selectors(register: Callable[..., None]) -> None:
    register(Greedy)
    register(Sample)
    register(Multinomial)
