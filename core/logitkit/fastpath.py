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
not a prefix (typical_p) set ``needs_complete_view = True``. Two optional
hints size the first view: ``fused_candidates(vocab)`` (at most that many
leading tokens survive: top_k, top_h) and ``fused_span()`` (nothing further
than that many logits below the best survives: min_p).

The view is exact, not approximate:

- The canonical order is score descending, then token id descending (the
  order of transformers' ascending stable sort, read backwards). A full sort
  and a ``topk`` followed by a small re-sort give the same order on the
  positions a partial view is sure of.
- A partial view (``complete=False``) names, per row, the position whose
  drop proves the rest of the row is dropped too: with ``topk(k + 1)`` (a
  top_k or top_h cap) the first position not strictly above the view's lowest
  score; with "every token within ``span`` of the best score" (no cap) a
  sentinel scored at the threshold, standing for the best token outside.
  After each truncating processor the runner checks that
  position. If it is dropped everywhere the view becomes complete; if not, a
  larger view is tried (4x the candidates, or spans of 8, 16, 32 logits), the
  last resort being one full sort.
- Statistics (log-normaliser, entropy) are float64 sums of fp32 terms, taken
  from the dense row while the view is partial and from the view once it
  holds every surviving token, so both paths agree to ~1e-15.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from logitkit.contract_checks import apply_checked, check_tokens

if TYPE_CHECKING:
    from logitkit.processor import Processor, Selector, StepContext

log = logging.getLogger("logitkit.fastpath")

NEG_INF = float("-inf")
#: Logit spans below the row's best score tried, in turn, for a partial view without a cap.
SPANS = (8.0, 16.0, 32.0)
#: A view this large a fraction of the vocabulary is built by a full sort instead.
FULL_SORT_FRACTION = 0.25


def log_normalizer(scores: torch.Tensor) -> torch.Tensor:
    """log Σ exp(scores) per row, float64 [batch]; -inf for rows with no finite score.

    The terms are fp32 (one cheap pass) and the sum is float64, so the result
    hardly depends on the order of the terms: a sorted view and the dense row
    give the same normaliser to ~1e-15.
    """
    top = scores.amax(dim=-1, keepdim=True).float()
    safe_top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    # exp_ in place on the fresh difference: one vocabulary-sized buffer, not two (page faults add up).
    terms = (scores.float() - safe_top).exp_()
    total = terms.sum(dim=-1, dtype=torch.float64)
    return safe_top.squeeze(-1).double() + total.log()


def entropy(scores: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of softmax(scores) in float64, given the row's log-normaliser."""
    logp = scores.to(torch.float64) - lse.unsqueeze(-1)
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros_like(p)).sum(dim=-1)


class RowStats:
    """Statistics of a dense row, computed once and shared by every attempt on it."""

    def __init__(self, scores: torch.Tensor) -> None:
        self.scores = scores
        self._lse: torch.Tensor | None = None
        self._entropy: torch.Tensor | None = None

    def log_normalizer(self) -> torch.Tensor:
        if self._lse is None:
            self._lse = log_normalizer(self.scores)
        return self._lse

    def entropy(self) -> torch.Tensor:
        if self._entropy is None:
            self._entropy = entropy(self.scores, self.log_normalizer())
        return self._entropy


#: Chunk length of the two-level top-k.
CHUNK = 64


def chunked_topk(scores: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.topk(scores, m)`` values and ids, reading the row once.

    The m best scores lie in the m chunks with the best maxima (a chunk whose
    maximum is below the m-th best maximum holds nothing above m elements), so
    one ``amax`` pass over chunks of 64 narrows the search to m * 64 scores.
    Ties at the edge may pick different ids than ``torch.topk`` would; the
    view's check handles ties either way.
    """
    vocab = scores.shape[-1]
    chunks = vocab // CHUNK
    if m * 8 > chunks:
        values, ids = torch.topk(scores, m, dim=-1, sorted=True)
        return values, ids
    body = scores[:, : chunks * CHUNK].reshape(scores.shape[0], chunks, CHUNK)
    # CPU reductions in half precision are slow; the chunk maxima are exact in fp32 too.
    maxima = body.float().amax(dim=-1) if body.element_size() < 4 else body.amax(dim=-1)
    best_chunks = torch.topk(maxima, m, dim=-1).indices
    picked = body.gather(1, best_chunks.unsqueeze(-1).expand(-1, -1, CHUNK)).flatten(1)
    picked_ids = (
        best_chunks.unsqueeze(-1) * CHUNK + torch.arange(CHUNK, device=scores.device)
    ).flatten(1)
    if chunks * CHUNK < vocab:  # the short last chunk is always searched
        tail_ids = torch.arange(chunks * CHUNK, vocab, device=scores.device).expand(
            scores.shape[0], -1
        )
        picked = torch.cat([picked, scores[:, chunks * CHUNK :]], dim=1)
        picked_ids = torch.cat([picked_ids, tail_ids], dim=1)
    values, where = torch.topk(picked, m, dim=-1, sorted=True)
    return values, picked_ids.gather(1, where)


def canonical_order(values: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-sort a candidate set already sorted by score (descending) into (score desc, token id desc) order."""
    if not bool((values[:, 1:] == values[:, :-1]).any()):
        return values, ids  # no ties: the score order is the canonical order
    # topk orders ties arbitrarily; two stable sorts (m is small) fix the order.
    ids, by_id = torch.sort(ids, dim=-1, descending=True, stable=True)
    values = values.gather(-1, by_id)
    values, by_value = torch.sort(values, dim=-1, descending=True, stable=True)
    return values, ids.gather(-1, by_value)


@dataclass(frozen=True)
class CandidateView:
    """The top candidates of each row, in canonical order (score desc, token id desc).

    ``values`` are the current scores ([batch, m], the scores' dtype; dropped
    tokens are -inf), ``token_ids`` their vocabulary ids. Rows with fewer
    candidates than ``m`` are padded with -inf. When ``complete`` is False the
    view is partial: tokens outside it keep their dense scores, and the
    processors' decision is exact for the whole row only if position
    ``check_at[row]`` ends up dropped. ``stats`` are the dense row's
    statistics while they still describe the view's row.
    """

    values: torch.Tensor
    token_ids: torch.Tensor
    vocab_size: int
    complete: bool
    check_at: torch.Tensor
    stats: RowStats | None = None

    # -- construction ------------------------------------------------------------------

    @classmethod
    def full(cls, scores: torch.Tensor, stats: RowStats | None = None) -> CandidateView:
        """Every token of every row, by one stable sort: the dense path's view."""
        ascending, order = torch.sort(scores, dim=-1, stable=True)
        values, ids = ascending.flip(-1), order.flip(-1)
        check_at = torch.zeros(scores.shape[0], dtype=torch.int64, device=scores.device)
        return cls(values, ids, scores.shape[-1], True, check_at, stats or RowStats(scores))

    @classmethod
    def top(cls, scores: torch.Tensor, m: int, stats: RowStats | None = None) -> CandidateView:
        """The ``m`` highest scores of each row (a full sort when ``m`` nears the vocabulary).

        Only tokens strictly above the view's lowest score are sure to be the
        row's best; the first position that is not sure must be dropped.
        """
        vocab = scores.shape[-1]
        if m >= vocab * FULL_SORT_FRACTION:
            return cls.full(scores, stats)
        values, ids = canonical_order(*chunked_topk(scores, m))
        check_at = (values > values[:, -1:]).sum(dim=-1)
        return cls(values, ids, vocab, False, check_at, stats or RowStats(scores))

    @classmethod
    def above(
        cls, scores: torch.Tensor, span: float, stats: RowStats | None = None
    ) -> CandidateView | None:
        """Every token within ``span`` of its row's best score, then a sentinel; None when that is too many.

        Every token outside scores below the threshold, so every position is
        sure. The sentinel, placed right after the real candidates, has the
        threshold itself as its score: it stands for the best token outside,
        and the processors dropping it proves they drop every token outside.
        It carries a real candidate's id with a -inf score once dropped, which
        ``densify`` (a max) and sampling ignore.
        """
        vocab = scores.shape[-1]
        threshold = scores.amax(dim=-1, keepdim=True) - span
        inside = scores >= threshold
        counts = inside.sum(dim=-1)
        width = int(counts.max()) + 1
        if width >= vocab * FULL_SORT_FRACTION or not bool(torch.isfinite(threshold).all()):
            return None
        rows, cols = inside.nonzero(as_tuple=True)
        starts = counts.cumsum(0) - counts
        # nonzero lists ids ascending; filling each row from its end leaves them descending,
        # so one stable sort by score gives the canonical order.
        slots = (counts - 1)[rows] - (
            torch.arange(rows.shape[0], device=scores.device) - starts[rows]
        )
        values = torch.full(
            (scores.shape[0], width), NEG_INF, dtype=scores.dtype, device=scores.device
        )
        values[rows, slots] = scores[rows, cols]
        ids = cols[starts].unsqueeze(-1).repeat(1, width)
        ids[rows, slots] = cols
        values, by_value = torch.sort(values, dim=-1, descending=True, stable=True)
        ids = ids.gather(-1, by_value)
        sentinel = counts.unsqueeze(-1)
        values = values.scatter(-1, sentinel, threshold.to(values.dtype))
        return cls(values, ids, vocab, False, counts, stats or RowStats(scores))

    # -- what processors read ------------------------------------------------------------

    @property
    def width(self) -> int:
        return int(self.values.shape[-1])

    def log_normalizer(self) -> torch.Tensor:
        """log of the row's total probability mass, float64 [batch]."""
        if self.stats is not None:
            return self.stats.log_normalizer()
        if not self.complete:
            raise RuntimeError("a partial view whose scores were rescaled has no row statistics")
        return log_normalizer(self.values)

    def log_probs(self) -> torch.Tensor:
        """log-probabilities of the view's tokens under the whole row, float64 [batch, m]."""
        return self.values.to(torch.float64) - self.log_normalizer().unsqueeze(-1)

    def entropy(self) -> torch.Tensor:
        """Entropy of the whole row's distribution, float64 [batch]."""
        if self.stats is not None:
            return self.stats.entropy()
        if not self.complete:
            raise RuntimeError("a partial view whose scores were rescaled has no row statistics")
        return entropy(self.values, log_normalizer(self.values))

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

    def keep(self, mask: torch.Tensor, compact: bool = False) -> CandidateView:
        """A view with every position outside ``mask`` set to -inf; the row statistics no longer apply.

        Processors that may drop a token ahead of a kept one (typical_p) pass
        ``compact=True``: the dropped tokens move behind the kept ones, so the
        view stays in the canonical order of its current scores.
        """
        values, ids = self.values.masked_fill(~mask, NEG_INF), self.token_ids
        if compact:
            order = torch.sort((~mask).to(torch.int8), dim=-1, stable=True).indices
            values, ids = values.gather(-1, order), ids.gather(-1, order)
        # A partial view keeps its statistics: the runner completes it or starts over.
        stats = self.stats if not self.complete else None
        return replace(self, values=values, token_ids=ids, stats=stats)

    def rescaled(self, values: torch.Tensor) -> CandidateView:
        """A view with new values from an order-preserving elementwise change (e.g. temperature).

        Rounding can turn distinct scores into ties, so the canonical order and
        the sure prefix are recomputed. The dense row's statistics no longer apply.
        """
        values, ids = canonical_order(values, self.token_ids)
        check_at = self.check_at if self.complete else (values > values[:, -1:]).sum(dim=-1)
        return replace(self, values=values, token_ids=ids, check_at=check_at, stats=None)

    # -- leaving the view ----------------------------------------------------------------

    def settled(self) -> torch.Tensor:
        """Bool [batch]: rows whose deciding position is dropped (so the whole tail is)."""
        if self.complete:
            return torch.ones_like(self.check_at, dtype=torch.bool)
        at = self.check_at.clamp(max=self.width - 1).unsqueeze(-1)
        return self.values.gather(-1, at).squeeze(-1) == NEG_INF

    def completed(self) -> CandidateView:
        return replace(self, complete=True, stats=None)

    def densify(self, like: torch.Tensor) -> torch.Tensor:
        """Dense scores shaped like ``like``: the view's values, -inf everywhere else."""
        if not self.complete:
            raise RuntimeError("only a complete view can be made dense")
        out = torch.full_like(like, NEG_INF)
        return out.scatter_reduce(-1, self.token_ids, self.values.to(like.dtype), reduce="amax")

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


def _cap_of(processor: Processor, vocab: int) -> int | None:
    hint = getattr(processor, "fused_candidates", None)
    return hint(vocab) if hint is not None else None


def _views(
    scores: torch.Tensor, chain: Sequence[Processor], capped: bool
) -> Iterator[CandidateView]:
    """Ever larger views of ``scores``, ending with the full sort."""
    vocab = scores.shape[-1]
    stats = RowStats(scores)
    if capped:
        # One past the largest cap (top_k's k) shows whether a tie crosses the edge.
        m = max(int(c) + 1 for p in chain if (c := _cap_of(p, vocab)) is not None)
        if scores.element_size() < 4:
            m *= 2  # fp16/bf16 scores tie often; room for a tie group at the edge saves a retry
        while m < vocab * FULL_SORT_FRACTION:
            yield CandidateView.top(scores, m, stats)
            m *= 4
    elif not getattr(chain[0], "needs_complete_view", False):
        hint = getattr(chain[0], "fused_span", None)
        first = hint() if hint is not None else None
        for span in ([first] if first is not None else []) + [
            s for s in SPANS if first is None or s > first
        ]:
            view = CandidateView.above(scores, span, stats)
            if view is None:
                break
            yield view
    yield CandidateView.full(scores, stats)


def run_fused(
    processors: Sequence[Processor], scores: torch.Tensor, ctx: StepContext
) -> CandidateView:
    """Run a fused run of processors on ``scores``; returns a complete view."""
    vocab = scores.shape[-1]
    first = next(i for i, p in enumerate(processors) if fused_kind(p) == "truncate")
    head, body = list(processors[:first]), list(processors[first:])
    capped = _cap_of(body[0], vocab) is not None
    if not capped:
        # The first truncation needs row statistics: apply the scaling head densely.
        for processor in head:
            scores = processor.apply(scores, ctx)
        head = []
    chain = head + body
    for view in _views(scores, chain, capped):
        result = _attempt(chain, view, ctx)
        if result is not None:
            return result
        log.debug("candidate view of %d too small; growing", view.width)
    raise AssertionError("a full view always settles")


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
            scores = apply_checked(processor, scores, ctx)
        view = run_fused(processors[start:stop], scores, ctx)
        position = stop
        if stop < len(processors):
            scores = view.densify(scores)
            view = None
    for processor in processors[position:]:
        scores = apply_checked(processor, scores, ctx)
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
    tokens: torch.Tensor = check_tokens(selector, pick(view, ctx), view.values.shape[0], view.vocab_size)
    return tokens
