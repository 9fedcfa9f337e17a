"""XTC, "exclude top choices": sometimes remove every likely token but the least likely of them.

Reference: llama.cpp ``llama_sampler_xtc_apply`` (src/llama-sampling.cpp) and
text-generation-webui ``XTCLogitsWarper``, both after p-e-w's original
proposal (text-generation-webui PR #6335). With probability ``probability``
per row and step, every token whose probability is >= ``threshold`` is
removed except the least probable of them; nothing happens when fewer than two
tokens reach the threshold. A threshold above 0.5 can never be reached by two
tokens, so it switches XTC off (llama.cpp returns early for it too).
"""

from __future__ import annotations

import torch
from pydantic import Field

from logitkit import NewRows, Processor, ProcessorConfig, RowState, Stage, StepContext
from logitkit_builtins.engines.seeds import row_seeds, row_uniform, seed_state

#: Keys XTC's coin apart from the selector's noise (see ``row_uniform``).
XTC_SALT = -0x585443


class XtcConfig(ProcessorConfig):
    probability: float = Field(
        default=0.0, ge=0, le=1, description="Chance per row and step that XTC acts."
    )
    threshold: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Tokens at or above this probability are 'top choices'.",
    )
    min_tokens_to_keep: int = Field(default=1, ge=1)
    seed: int | None = Field(
        default=None, ge=0, description="Seed for rows without a context seed."
    )


class Xtc(Processor):
    """With some probability, remove all tokens above a threshold except the least likely of them."""

    name = "xtc"
    # After every other truncation sampler, before temperature in llama.cpp's chain.
    stage = Stage.TRUNCATION
    priority = 90
    Config = XtcConfig
    primary = "probability"

    # Its coin is keyed on each row's own seed and step.
    mixed_rows = True
    # Its state is each row's seed, which a call on its own reads from the context alike.
    seeds_only_state = True

    def init_rows(self, rows: NewRows) -> RowState:
        return seed_state(rows, self.config.seed)

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        cfg = self.config
        if cfg.probability <= 0 or cfg.threshold > 0.5:
            return scores
        coin = row_uniform(row_seeds(self, self.config.seed, ctx), ctx.steps, XTC_SALT).to(scores.device)
        acts = coin < cfg.probability
        if not bool(acts.any()):
            return scores
        logits = scores.float()
        probs, order = logits.softmax(dim=-1).sort(dim=-1, descending=True)
        above = (probs >= cfg.threshold).sum(dim=-1, keepdim=True)
        last = above - 1  # sorted position of the least likely top choice
        finite = torch.isfinite(logits).sum(dim=-1, keepdim=True)
        ok = acts.unsqueeze(-1) & (last > 0) & (finite - last >= cfg.min_tokens_to_keep)
        positions = torch.arange(scores.shape[-1], device=scores.device).expand_as(probs)
        drop_sorted = ok & (positions < last)
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        return scores.masked_fill(drop, float("-inf"))
