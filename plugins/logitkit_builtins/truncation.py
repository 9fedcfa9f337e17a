"""Truncation samplers: keep the head of the distribution, set the tail to -inf.

Each processor decides on a sorted candidate view (``apply_sorted``), so a run
of them can share one view in the fused path (``logitkit.fastpath``). The
dense ``apply`` builds the full view by one stable sort and runs the same
code, which is what makes the fused and dense paths agree token for token.
Probabilities are computed in float64 on the view.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from pydantic import Field

from logitkit import Processor, ProcessorConfig, Stage, StepContext
from logitkit.fastpath import CandidateView, RowStats, mass_bound_threshold, mass_threshold

NEG_INF = float("-inf")


def dense_via_view(processor: Processor, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
    """The dense path of a view processor: one full sort, the sorted decision, scattered back."""
    view = processor.apply_sorted(CandidateView.full(scores), ctx)  # type: ignore[attr-defined]
    return view.densify(scores)


def at_least_nth(view: CandidateView, n: int) -> torch.Tensor:
    """Bool [batch, m]: values at or above the n-th highest (ties included, like transformers)."""
    return view.values >= view.top_n_values(min(n, view.vocab_size))


def below_log_prob(stats: RowStats, log_p: torch.Tensor | float) -> torch.Tensor:
    """The score of log-probability ``log_p`` in each row ([batch, 1]), lowered by a rounding slack."""
    score = stats.log_normalizer().unsqueeze(-1) + log_p
    return (score - 1e-3 - score.abs() * 1e-4).float()


class TruncationProcessor(Processor):
    """Shared fast-path declarations: truncations only drop tokens, keeping a prefix of the view."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    stage = Stage.TRUNCATION
    argmax_invariant = True
    fused = "truncate"
    #: True when the decision is not a prefix of the score order (typical_p).
    needs_complete_view = False
    #: The threshold hints read the row only through ``stats``: a temperature ahead can be folded in.
    fused_threshold_from_stats = True

    def fused_candidates(self, vocab: int) -> int | None:
        """How many leading candidates can survive, when the processor caps it (top_k, top_h)."""
        return None

    def apply_sorted(self, view: CandidateView, ctx: StepContext) -> CandidateView:
        raise NotImplementedError

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return dense_via_view(self, scores, ctx)


class TopKConfig(ProcessorConfig):
    top_k: int = Field(default=50, ge=1, description="Keep the k highest-scoring tokens.")
    min_tokens_to_keep: int = Field(default=1, ge=1)


class TopK(TruncationProcessor):
    """Keep the k tokens with the highest scores (ties at the k-th score are kept)."""

    name = "top_k"
    priority = 20
    Config = TopKConfig

    def k(self, vocab: int) -> int:
        return min(max(self.config.top_k, self.config.min_tokens_to_keep), vocab)

    def fused_candidates(self, vocab: int) -> int | None:
        return self.k(vocab)

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        # No sort needed: the k-th value alone decides, whatever the order of ties.
        kth = torch.topk(scores, self.k(scores.shape[-1]), dim=-1).values[..., -1:]
        return scores.masked_fill(scores < kth, NEG_INF)

    def apply_sorted(self, view: CandidateView, ctx: StepContext) -> CandidateView:
        k = self.k(view.vocab_size)
        if k > view.width and not view.complete:
            return view  # too narrow to know the k-th value: keeps everything, so the view grows
        return view.keep(at_least_nth(view, k))


class TopPConfig(ProcessorConfig):
    top_p: float = Field(
        default=1.0, gt=0, le=1, description="Keep the smallest set whose probability reaches p."
    )
    min_tokens_to_keep: int = Field(default=1, ge=1)


def _mass_at_or_below(log_probs: torch.Tensor) -> torch.Tensor:
    """1 - the mass strictly above each token of a view in canonical order, float64."""
    probs = log_probs.exp()
    above = torch.cat([torch.zeros_like(probs[:, :1]), torch.cumsum(probs, dim=-1)[:, :-1]], dim=-1)
    return 1.0 - above


class TopP(TruncationProcessor):
    """Nucleus sampling: keep the most likely tokens whose cumulative probability reaches p."""

    name = "top_p"
    priority = 30
    Config = TopPConfig

    #: Where the first threshold falls back on a sampled estimate of the row's mass, it aims at p plus
    #: this share of the mass p leaves out; the second (for rows still short) at nearly all of it.
    margins = (0.25, 0.9)

    def fused_threshold(
        self, scores: torch.Tensor, stats: RowStats, attempt: int
    ) -> torch.Tensor | None:
        """A score below which no token survives: first the lane maxima's bound on the mass (sure,
        and tight where the nucleus is a small part of the row), else a sampled estimate."""
        p = self.config.top_p
        if p >= 1.0 or attempt >= len(self.margins):
            return None
        estimate_rows: torch.Tensor | None = None
        if attempt == 0:
            bound = mass_bound_threshold(stats, p)
            estimate_rows = torch.isinf(bound)
            if not bool(estimate_rows.any()):
                return bound
        estimate = mass_threshold(scores, stats, p + self.margins[attempt] * (1.0 - p))
        return estimate if estimate_rows is None else torch.where(estimate_rows, estimate, bound)

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self.config.top_p >= 1.0:
            return scores  # transformers does not even add the warper at 1.0
        return dense_via_view(self, scores, ctx)

    def apply_sorted(self, view: CandidateView, ctx: StepContext) -> CandidateView:
        if self.config.top_p >= 1.0:
            return view
        tail64 = _mass_at_or_below(view.log_probs())
        # The fast normaliser is an fp32 sum: a row with a token within its rounding of the
        # threshold decides on the float64 one instead (both paths read the same statistics).
        # Its relative error on 152k terms measured up to 8.8e-7 (three tokens holding nearly all
        # the mass; 2.6e-7 on Gaussian rows); 2e-6 leaves a margin.
        close = (tail64 - (1.0 - self.config.top_p)).abs() < 2e-6
        if bool(close.any()):
            near = close.any(dim=-1, keepdim=True)
            tail64 = torch.where(near, _mass_at_or_below(view.precise_log_probs(near.squeeze(-1))), tail64)
        # transformers drops a token when the mass at or below it is <= 1 - p, both in the
        # scores' dtype; rounding the same way drops the tokens that sit exactly on the threshold.
        # (Only the rounding is copied, not transformers' own float32 sums, so the fused and
        # the dense path, which see different widths of the row, still decide alike.)
        dtype = view.values.dtype
        tail = tail64.to(dtype)
        # Not ``tail > ...``: a NaN mass keeps its token, as transformers' ``<=`` removal does.
        keep = ~(tail <= torch.tensor(1.0 - self.config.top_p, dtype=dtype))
        if self.config.min_tokens_to_keep > 1:  # the first token is always kept (all the mass is at or below it)
            keep |= view.leading(self.config.min_tokens_to_keep)
        return view.keep(keep)


class MinPConfig(ProcessorConfig):
    min_p: float = Field(
        default=0.0, ge=0, le=1, description="Drop tokens below min_p times the top probability."
    )
    min_tokens_to_keep: int = Field(default=1, ge=1)


class MinP(TruncationProcessor):
    """Keep tokens whose probability is at least min_p times the most likely token's."""

    name = "min_p"
    priority = 40
    Config = MinPConfig

    def fused_threshold(
        self, scores: torch.Tensor, stats: RowStats, attempt: int
    ) -> torch.Tensor | None:
        """Nothing more than -log(min_p) below the best score survives (plus slack for rounding)."""
        if self.config.min_p == 0.0 or attempt > 0:
            return None
        return stats.top().float() - (-math.log(self.config.min_p) * 1.001 + 1e-3)

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self.config.min_p == 0.0:
            return scores
        return dense_via_view(self, scores, ctx)

    def apply_sorted(self, view: CandidateView, ctx: StepContext) -> CandidateView:
        if self.config.min_p == 0.0:
            return view
        # p / p_max = exp(score - top score): compared in log space, no normaliser needed.
        values = view.values.to(torch.float64)
        keep = (values - values[:, :1]) >= math.log(self.config.min_p)
        return view.keep(keep | view.leading(self.config.min_tokens_to_keep))


class TypicalPConfig(ProcessorConfig):
    typical_p: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Keep the most typical tokens until their mass reaches this; 1 is off.",
    )
    min_tokens_to_keep: int = Field(default=1, ge=1)


class TypicalP(TruncationProcessor):
    """Locally typical sampling: keep tokens whose surprise is closest to the entropy."""

    name = "typical_p"
    priority = 50
    Config = TypicalPConfig
    # The most likely token can be far from the entropy and get dropped (transformers does the same).
    argmax_invariant = False
    #: Extra logits below the band reaching the best token, for the first and the second view.
    slack = (3.0, 8.0)

    def fused_threshold(
        self, scores: torch.Tensor, stats: RowStats, attempt: int
    ) -> torch.Tensor | None:
        """A score ``lo`` such that, likely, every kept token scores above it.

        The kept tokens' scores lie within some distance d of ``c = lse - H``
        (their surprise is within d of the entropy). A token below ``lo`` is
        further than ``c - lo`` from it, and the view's sentinel, scored at
        ``lo``, is exactly that far: when the sentinel is dropped (d is
        smaller), so is every token outside, and the tokens up to the cut in
        distance order are the view's, in the dense path's order. The first
        guess is the band reaching the best token, mirrored below ``c``.
        """
        if self.config.typical_p >= 1.0 or attempt >= len(self.slack):
            return None
        centre = (stats.log_normalizer() - stats.entropy()).unsqueeze(-1)
        reach = (stats.top().double() - centre).clamp(min=0.0)
        return (centre - reach - self.slack[attempt]).float()

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self.config.typical_p >= 1.0:
            return scores
        return dense_via_view(self, scores, ctx)

    def apply_sorted(self, view: CandidateView, ctx: StepContext) -> CandidateView:
        if self.config.typical_p >= 1.0:
            return view
        logp = view.log_probs()
        probs = logp.exp()
        # On a partial view the sentinel stands for the nearest token outside (see fused_threshold).
        distance = (-logp - view.entropy().unsqueeze(-1)).abs()
        closest, order = torch.sort(distance, dim=-1, stable=True)
        cumulative = probs.gather(-1, order).cumsum(dim=-1)
        last = (
            (cumulative < self.config.typical_p).sum(dim=-1, keepdim=True).clamp(max=view.width - 1)
        )
        drop_sorted = closest > closest.gather(-1, last)
        drop_sorted[:, : self.config.min_tokens_to_keep] = False
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        # It may drop the best token, so the survivors are moved to the front.
        return view.keep(~drop, compact=True)


class EpsilonCutoffConfig(ProcessorConfig):
    epsilon_cutoff: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="Drop tokens whose probability is below epsilon; 0 is off.",
    )
    min_tokens_to_keep: int = Field(default=1, ge=1)


class EpsilonCutoff(TruncationProcessor):
    """Epsilon sampling: drop every token whose probability is below a fixed epsilon."""

    name = "epsilon_cutoff"
    priority = 60
    Config = EpsilonCutoffConfig

    def fused_threshold(
        self, scores: torch.Tensor, stats: RowStats, attempt: int
    ) -> torch.Tensor | None:
        """p >= epsilon is a score at least log-normaliser + log(epsilon) (less slack for rounding)."""
        if self.config.epsilon_cutoff == 0.0 or attempt > 0:
            return None
        return below_log_prob(stats, math.log(self.config.epsilon_cutoff))

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self.config.epsilon_cutoff == 0.0:
            return scores
        return dense_via_view(self, scores, ctx)

    def apply_sorted(self, view: CandidateView, ctx: StepContext) -> CandidateView:
        if self.config.epsilon_cutoff == 0.0:
            return view
        keep = view.log_probs().exp() >= self.config.epsilon_cutoff
        return view.keep(keep | at_least_nth(view, self.config.min_tokens_to_keep))


class EtaCutoffConfig(ProcessorConfig):
    eta_cutoff: float = Field(
        default=0.0,
        ge=0,
        lt=1,
        description="epsilon of eta sampling; the cutoff shrinks as entropy grows. 0 is off.",
    )
    min_tokens_to_keep: int = Field(default=1, ge=1)


class EtaCutoff(TruncationProcessor):
    """Eta sampling: drop tokens below min(epsilon, sqrt(epsilon) * exp(-entropy))."""

    name = "eta_cutoff"
    priority = 70
    Config = EtaCutoffConfig

    def fused_threshold(
        self, scores: torch.Tensor, stats: RowStats, attempt: int
    ) -> torch.Tensor | None:
        """The same cut as epsilon's, at this row's eta (the entropy is needed for the decision anyway)."""
        if self.config.eta_cutoff == 0.0 or attempt > 0:
            return None
        return below_log_prob(stats, self.eta(stats.entropy()).log())

    def eta(self, entropy: torch.Tensor) -> torch.Tensor:
        eps = self.config.eta_cutoff
        return torch.clamp(math.sqrt(eps) * torch.exp(-entropy), max=eps).unsqueeze(-1)

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self.config.eta_cutoff == 0.0:
            return scores
        return dense_via_view(self, scores, ctx)

    def apply_sorted(self, view: CandidateView, ctx: StepContext) -> CandidateView:
        eps = self.config.eta_cutoff
        if eps == 0.0:
            return view
        keep = view.log_probs().exp() >= self.eta(view.entropy())
        return view.keep(keep | at_least_nth(view, self.config.min_tokens_to_keep))


class TopHConfig(ProcessorConfig):
    top_h: float = Field(
        default=1.0,
        gt=0,
        le=1,
        description="Share of the top tokens' entropy the kept tokens may add up to.",
    )


class TopH(TruncationProcessor):
    """Top-H: among the 100 best tokens, keep the most likely until their entropy reaches top_h * H."""

    name = "top_h"
    priority = 10
    Config = TopHConfig
    #: transformers' cap on the tokens Top-H considers.
    considered = 100

    def fused_candidates(self, vocab: int) -> int | None:
        return min(self.considered, vocab)

    def apply_sorted(self, view: CandidateView, ctx: StepContext) -> CandidateView:
        n = min(self.considered, view.vocab_size)
        if n > view.width and not view.complete:
            return view  # the view must hold the n best tokens first
        top = view.values[:, :n].to(torch.float64)
        logp = top - torch.logsumexp(top, dim=-1, keepdim=True)
        probs = logp.exp()
        terms = torch.where(probs > 0, -probs * logp, torch.zeros_like(probs))
        tau = terms.sum(dim=-1, keepdim=True) * self.config.top_h
        keep_top = terms.cumsum(dim=-1) <= tau
        keep_top[:, 0] = True
        keep = torch.zeros_like(view.values, dtype=torch.bool)
        keep[:, : keep_top.shape[-1]] = keep_top
        return view.keep(keep)


TRUNCATIONS: tuple[type[Processor], ...] = (
    TopH,
    TopK,
    TopP,
    MinP,
    TypicalP,
    EpsilonCutoff,
    EtaCutoff,
)


def register_processors(register: Callable[..., None]) -> None:
    for cls in TRUNCATIONS:
        register(cls)
