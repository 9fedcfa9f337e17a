"""The fused truncation path: one sorted candidate view per row, shared by a run of processors.

Truncation samplers (top_k, top_p, min_p, ...) each sort or scan the whole
vocabulary when run one after another on dense scores. Here a run of them
works on a :class:`CandidateView`: the highest-scoring tokens of each row in
a fixed canonical order, plus the row statistics they need. The selector then
samples straight from the view.

A processor opts in by defining ``apply_sorted(view, ctx) -> CandidateView``
and the class attribute ``fused`` (``"scale"`` for order-preserving
elementwise changes such as temperature, ``"truncate"`` for processors that
only drop tokens). A truncating processor must keep a *prefix* of the view's
order, plus ties of kept values, so that once the first uncertain position is
dropped every token beyond the view is dropped too. Processors whose choice is
not a prefix (typical_p) set ``needs_complete_view = True``.

The view is exact, not approximate:

- The canonical order is score descending, then token id descending (the
  order of transformers' ascending stable sort, read backwards). A full sort
  and a ``topk`` followed by a small re-sort give the same order on the
  positions a partial view is sure of.
- A partial view (``complete=False``) is sure of its first ``certain``
  positions: every token strictly above its smallest score. After each
  truncating processor the runner checks that the first uncertain position of
  every row was dropped. If so, everything beyond the view is dropped as well
  and the view becomes complete; if not, the view grows (4x) and the run starts
  again, ending in a full sort at worst.
- Statistics (log-normaliser, entropy) are computed in float64: from the dense
  row while the view is partial, from the view once it holds every finite
  token.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from logitkit.processor import Processor, Selector, StepContext

log = logging.getLogger("logitkit.fastpath")

NEG_INF = float("-inf")
#: First size of a partial view when no processor asks for more.
INITIAL_VIEW = 64
#: A view this large a fraction of the vocabulary is built by a full sort instead.
FULL_SORT_FRACTION = 0.25


def log_normalizer(scores: torch.Tensor) -> torch.Tensor:
    """``logsumexp`` of each row in float64 ([batch]); -inf for rows with no finite score."""
    return torch.logsumexp(scores.to(torch.float64), dim=-1)


def entropy(scores: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of softmax(scores) in float64, given the row's log-normaliser."""
    logp = scores.to(torch.float64) - lse.unsqueeze(-1)
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(dim=-1)


def canonical_order(values: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-sort a small candidate set into (score desc, token id desc) order."""
    # topk orders ties arbitrarily; two stable sorts (m is small) fix the order.
    ids, by_id = torch.sort(ids, dim=-1, descending=True, stable=True)
    values = values.gather(-1, by_id)
    values, by_value = torch.sort(values, dim=-1, descending=True, stable=True)
    return values, ids.gather(-1, by_value)


@dataclass(frozen=True)
class CandidateView:
    """The top candidates of each row, in canonical order (score desc, token id desc).

    ``values`` are the current scores ([batch, m], the scores' dtype; dropped
    tokens are -inf), ``token_ids`` their vocabulary ids. When ``complete`` is
    False the view is partial: tokens outside it keep their dense scores, and
    only the first ``certain[row]`` positions are known to be in canonical
    order. ``dense`` is the dense row the view was cut from, for statistics.
    """

    values: torch.Tensor
    token_ids: torch.Tensor
    vocab_size: int
    complete: bool
    certain: torch.Tensor
    dense: torch.Tensor | None = None

    # -- construction ------------------------------------------------------------------

    @classmethod
    def full(cls, scores: torch.Tensor) -> CandidateView:
        """Every token of every row, by one stable sort: the dense path's view."""
        ascending, order = torch.sort(scores, dim=-1, stable=True)
        values, ids = ascending.flip(-1), order.flip(-1)
        m = scores.shape[-1]
        certain = torch.full((scores.shape[0],), m, dtype=torch.int64, device=scores.device)
        return cls(values, ids, m, True, certain, None)

    @classmethod
    def top(cls, scores: torch.Tensor, m: int) -> CandidateView:
        """The ``m`` highest scores of each row (a full sort when ``m`` nears the vocabulary)."""
        vocab = scores.shape[-1]
        if m >= vocab * FULL_SORT_FRACTION or m >= vocab:
            return cls.full(scores)
        values, ids = canonical_order(*torch.topk(scores, m, dim=-1, sorted=True))
        certain = (values > values[:, -1:]).sum(dim=-1)
        return cls(values, ids, vocab, False, certain, scores)

    # -- what processors read ------------------------------------------------------------

    @property
    def width(self) -> int:
        return int(self.values.shape[-1])

    def log_normalizer(self) -> torch.Tensor:
        """log of the row's total probability mass, float64 [batch]."""
        if self.complete:
            return log_normalizer(self.values)
        if self.dense is None:
            raise RuntimeError("a partial view whose scores were rescaled has no row statistics")
        return log_normalizer(self.dense)

    def log_probs(self) -> torch.Tensor:
        """log-probabilities of the view's tokens under the whole row, float64 [batch, m]."""
        return self.values.to(torch.float64) - self.log_normalizer().unsqueeze(-1)

    def entropy(self) -> torch.Tensor:
        """Entropy of the whole row's distribution, float64 [batch]."""
        if self.complete:
            return entropy(self.values, log_normalizer(self.values))
        if self.dense is None:
            raise RuntimeError("a partial view whose scores were rescaled has no row statistics")
        return entropy(self.dense, log_normalizer(self.dense))

    def top_n_values(self, n: int) -> torch.Tensor:
        """The n-th highest value of each row ([batch, 1]); -inf when the view is shorter."""
        if n <= self.width:
            return self.values[:, n - 1 : n]
        return torch.full_like(self.values[:, :1], NEG_INF)

    def leading(self, n: int) -> torch.Tensor:
        """Bool [batch, m]: the first ``n`` positions."""
        positions = torch.arange(self.width, device=self.values.device)
        return (positions < n).expand_as(self.values)

    # -- what processors return ----------------------------------------------------------

    def keep(self, mask: torch.Tensor) -> CandidateView:
        """A view with every position outside ``mask`` set to -inf."""
        return replace(self, values=self.values.masked_fill(~mask, NEG_INF))

    def rescaled(self, values: torch.Tensor) -> CandidateView:
        """A view with new values from an order-preserving elementwise change (e.g. temperature).

        Rounding can turn distinct scores into ties, so the canonical order and
        the sure prefix are recomputed. A partial view's dense row no longer
        matches its values, so it loses its statistics.
        """
        values, ids = canonical_order(values, self.token_ids)
        certain = self.certain if self.complete else (values > values[:, -1:]).sum(dim=-1)
        return replace(
            self,
            values=values,
            token_ids=ids,
            certain=certain,
            dense=self.dense if self.complete else None,
        )

    # -- leaving the view ----------------------------------------------------------------

    def settled(self) -> torch.Tensor:
        """Bool [batch]: rows whose first uncertain position is dropped (so the whole tail is)."""
        if self.complete:
            return torch.ones_like(self.certain, dtype=torch.bool)
        at = self.certain.clamp(max=self.width - 1).unsqueeze(-1)
        return self.values.gather(-1, at).squeeze(-1) == NEG_INF

    def completed(self) -> CandidateView:
        certain = torch.full_like(self.certain, self.width)
        return replace(self, complete=True, certain=certain, dense=None)

    def densify(self, like: torch.Tensor) -> torch.Tensor:
        """Dense scores shaped like ``like``: the view's values, -inf everywhere else."""
        if not self.complete:
            raise RuntimeError("only a complete view can be made dense")
        out = torch.full_like(like, NEG_INF)
        return out.scatter(-1, self.token_ids, self.values.to(like.dtype))

    def alive(self) -> torch.Tensor:
        """Bool [batch]: rows that still have a token to pick."""
        return (self.values > NEG_INF).any(dim=-1)


def fused_kind(processor: Processor) -> str | None:
    """``"scale"``, ``"truncate"`` or None when the processor has no fast path right now."""
    kind = getattr(processor, "fused", None)
    if kind not in ("scale", "truncate") or not hasattr(processor, "apply_sorted"):
        return None
    usable = getattr(processor, "fused_usable", None)
    if usable is not None and not usable():
        return None
    return str(kind)


def fused_runs(processors: Sequence[Processor]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each maximal run of fast-path processors holding a truncation."""
    runs: list[tuple[int, int]] = []
    start = None
    for i, processor in enumerate([*processors, None]):
        kind = fused_kind(processor) if processor is not None else None
        if kind is not None and start is None:
            start = i
        elif kind is None and start is not None:
            if any(fused_kind(p) == "truncate" for p in processors[start:i]):
                runs.append((start, i))
            start = None
    return runs


def _view_size_hint(processors: Sequence[Processor], vocab: int, capped: bool) -> int:
    # One past a cap (top_k's k) shows whether a tie crosses the edge.
    sizes = [int(s) + 1 for p in processors if (s := _candidates_of(p, vocab)) is not None]
    return max(sizes) if capped else max([INITIAL_VIEW, *sizes])


def _candidates_of(processor: Processor, vocab: int) -> int | None:
    hint = getattr(processor, "fused_candidates", None)
    return hint(vocab) if hint is not None else None


def run_fused(
    processors: Sequence[Processor], scores: torch.Tensor, ctx: StepContext
) -> CandidateView:
    """Run a fused run of processors on ``scores``; returns a complete view."""
    vocab = scores.shape[-1]
    first = next(i for i, p in enumerate(processors) if fused_kind(p) == "truncate")
    head, body = list(processors[:first]), list(processors[first:])
    capped = _candidates_of(body[0], vocab) is not None
    if not capped:
        # The first truncation needs row statistics: apply the scaling head densely.
        for processor in head:
            scores = processor.apply(scores, ctx)
        head = []
    chain = head + body
    # Only the first truncation can meet a partial view: each one either completes it or fails.
    m = (
        vocab
        if getattr(body[0], "needs_complete_view", False)
        else _view_size_hint(chain, vocab, capped)
    )
    while True:
        view = _attempt(chain, CandidateView.top(scores, min(m, vocab)), ctx)
        if view is not None:
            return view
        m *= 4
        log.debug("candidate view too small; growing to %d", m)


def _attempt(
    chain: Sequence[Processor], view: CandidateView, ctx: StepContext
) -> CandidateView | None:
    """The view after the chain, or None when a partial view turned out too small."""
    for processor in chain:
        if not view.complete and getattr(processor, "needs_complete_view", False):
            return None
        view = processor.apply_sorted(view, ctx)  # type: ignore[attr-defined]
        if not view.complete and fused_kind(processor) == "truncate":
            if not bool(view.settled().all()):
                return None
            view = view.completed()
    if not view.complete:
        raise RuntimeError("a fused run ended with a partial view")
    return view


def run_chain(
    processors: Sequence[Processor], scores: torch.Tensor, ctx: StepContext
) -> tuple[torch.Tensor, CandidateView | None]:
    """Every processor on ``scores``, fusing what can be fused: ``(scores, view)``.

    When the chain ends with a fused run, ``view`` is that run's result and
    the dense result is ``view.densify(scores)`` (left to the caller, so a
    selector can sample from the view without a dense pass); otherwise
    ``view`` is None and ``scores`` is the result.
    """
    runs = fused_runs(processors)
    position = 0
    view: CandidateView | None = None
    for start, stop in runs:
        for processor in processors[position:start]:
            scores = processor.apply(scores, ctx)
        view = run_fused(processors[start:stop], scores, ctx)
        position = stop
        if stop < len(processors):
            scores = view.densify(scores)
            view = None
    for processor in processors[position:]:
        scores = processor.apply(scores, ctx)
    return scores, view


def select_from_view(
    selector: Selector | None, view: CandidateView, ctx: StepContext
) -> torch.Tensor | None:
    """Token ids picked straight from a complete view, or None when the selector cannot."""
    pick: Any = getattr(selector, "select_sorted", None)
    if pick is None:
        return None
    # Empty rows, NaN and +inf go to the dense path, where the pipeline's empty-row guard handles them.
    odd = torch.isnan(view.values) | torch.isposinf(view.values)
    if not bool((view.alive() & ~odd.any(dim=-1)).all()):
        return None
    tokens: torch.Tensor = pick(view, ctx)
    return tokens
