"""The fused truncation path: one sorted candidate view per row, shared by a run of processors.

Truncation samplers (top_k, top_p, min_p, ...) each sort or scan the whole
vocabulary when run one after another on dense scores. Here a run of them
works on a :class:`CandidateView`: the highest-scoring tokens of each row in
a fixed canonical order, plus the row statistics they need. The selector then
samples straight from the view.

A processor opts in by defining ``apply_sorted(view, ctx) -> CandidateView``
and the class attribute ``fused`` (``"scale"`` for order-preserving
elementwise changes such as temperature, ``"truncate"`` for processors that
only drop tokens). A processor that rewrites a few scores per row
(repetition_penalty) may instead set ``fused = "edit"`` and define
``sparse_edit(scores, ctx) -> SparseEdit``: at the start of a run whose first
truncation has a cap (top_k), the view is built from the unedited scores and
the edit, written into the part of the row the search reads, so the
vocabulary-sized copy is never made; elsewhere its ``apply`` runs. A truncating processor must keep a *prefix* of the view's
order, plus ties of kept values, so that once the first uncertain position is
dropped every token beyond the view is dropped too. Processors whose choice is
not a prefix set ``needs_complete_view = True``, unless dropping the deciding
position still proves the rest dropped (typical_p: the sentinel is the
nearest outside token to its band; ``keep(compact=True)`` moves the deciding
position with its token). Optional hints
size the first view: ``fused_candidates(vocab)`` (at most that many leading
tokens survive: top_k, top_h), ``fused_threshold(scores, stats, attempt)``
(a per-row score below which nothing survives, lower with each attempt:
top_p's estimate of where its mass lies, min_p's, epsilon's and eta's exact
cuts) and, for third-party processors, ``fused_span()`` (nothing further
than that many logits below the best survives). A ``"scale"`` processor
that divides every score by a positive constant may say so with
``fused_divisor()`` (temperature): ahead of a truncation without a cap whose
hint reads the row only through ``stats`` (``fused_threshold_from_stats =
True``, or no hint), the division is folded into the row statistics rather
than made dense.

The view is exact, not approximate:

- The canonical order is score descending, then token id descending (the
  order of transformers' ascending stable sort, read backwards). A full sort
  and a ``topk`` followed by a small re-sort give the same order on the
  positions a partial view is sure of.
- A partial view (``complete=False``) names, per row, the position whose
  drop proves the rest of the row is dropped too: with ``topk(k + 1)`` (a
  top_k or top_h cap) the first position not strictly above the view's lowest
  score (with an edit, nor above the bound on the lanes not read, which a
  stand-in scored at that bound then represents); with "every token at or above a threshold" (no cap) a sentinel
  scored at the threshold, standing for the best token outside. After each
  truncating processor the runner checks that position in every row. Rows
  where it is dropped are settled; the others alone are tried again on a
  larger view (4x the candidates, or the hint's next, lower threshold), the
  last resort being a full sort of those rows only.
- Rows holding NaN skip the view: it would rank NaN as the best score, where
  the dense processors' comparisons keep it and drop nothing, so those rows
  run the fused processors densely, as the dense path does.
- Statistics (log-normaliser, entropy) are taken from the dense row while
  the view is partial and from the view once it holds every surviving token;
  their sums depend only on where each term sits, so both paths agree bit
  for bit.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from logitkit import native
from logitkit.contract_checks import apply_checked, check_tokens
from logitkit.scratch import scratch

if TYPE_CHECKING:
    from logitkit.processor import Processor, Selector, StepContext

log = logging.getLogger("logitkit.fastpath")

NEG_INF = float("-inf")
#: Logit spans below the row's best score tried, in turn, for a partial view without a cap.
SPANS = (8.0, 16.0, 32.0)
#: Thresholds a processor's ``fused_threshold`` hint is asked for, each lower than the last.
MAX_HINTS = 2
#: A view this large a fraction of the vocabulary is built by a full sort instead.
FULL_SORT_FRACTION = 0.25
#: Views this narrow are not trimmed: each tensor operation costs about the same at such widths.
TRIM_WIDTH = 256


def round_down(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``values`` in ``dtype``, rounded towards -inf (a threshold must not rise when cast)."""
    cast = values.to(dtype)
    if values.dtype == dtype:
        return cast
    lower = torch.nextafter(cast, torch.full_like(cast, NEG_INF))
    return torch.where(cast.to(values.dtype) > values, lower, cast)


#: Terms of the log-normaliser summed in fp32 per block of this many, then in float64.
SUM_BLOCK = 32


def log_normalizer(
    scores: torch.Tensor,
    top: torch.Tensor | None = None,
    positional: bool = True,
    divisor: float | None = None,
) -> torch.Tensor:
    """log Σ exp(scores) per row, float64 [batch]; -inf for rows with no finite score.

    The fp32 terms are summed in fp32 blocks of 32 (a float64 sum of every
    term costs more than a softmax pass on CPU), and the block sums by a
    float64 running sum. A result therefore depends only on where each term
    sits, not on the row's length: a view holding a row's leading tokens and
    the dense path's fully sorted row (the same tokens, then -inf) give the
    same normaliser, bit for bit. ``positional=False`` sums the terms in fp32
    at once instead (a third of the cost), for a dense row that both paths
    read the same way. With a ``divisor`` the row is ``scores / divisor``
    (divided a block at a time; ``top`` must then be given, and be that row's).
    """
    if divisor is not None and (positional or top is None):
        raise ValueError("a divisor needs the row's top and the fp32 sum")
    if top is None:
        top = scores.amax(dim=-1, keepdim=True)
    top = top.float()
    safe_top = finite_or_zero(top)
    if positional:
        # exp_ in place on the difference, in a scratch buffer: no fresh vocabulary-sized tensor.
        total = positional_sum(minus_top(scores, safe_top, "log_normalizer").exp_())
    else:
        total = _blocked_exp_sum(scores, safe_top, divisor)
    return safe_top.squeeze(-1).double() + total.log()


#: The fp32 terms of a dense normaliser are made this many bytes of rows at a time, so that the
#: subtraction, exp and sum read them from cache rather than memory.
LSE_BLOCK_BYTES = 2 << 20


def _blocked_exp_sum(
    scores: torch.Tensor, top: torch.Tensor, divisor: float | None = None
) -> torch.Tensor:
    """Σ exp(scores / divisor - top) per row (no divisor: scores - top), fp32 terms summed in
    fp32, as float64 [batch]."""
    batch, vocab = scores.shape
    rows = max(1, LSE_BLOCK_BYTES // max(1, 4 * vocab))

    def block(part: torch.Tensor, part_top: torch.Tensor) -> torch.Tensor:
        if divisor is not None:
            part = part / divisor  # a block's worth: the dense division's values, bit for bit
        return minus_top(part, part_top, "log_normalizer").exp_().sum(dim=-1)

    if rows >= batch:
        return block(scores, top).double()
    sums = [block(scores[i : i + rows], top[i : i + rows]) for i in range(0, batch, rows)]
    return torch.cat(sums).double()


def finite_or_zero(values: torch.Tensor) -> torch.Tensor:
    """``values`` with NaN and +-inf replaced by 0 (one op, where ``where(isfinite)`` takes six)."""
    return values.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


def minus_top(scores: torch.Tensor, top: torch.Tensor, slot: str | None = None) -> torch.Tensor:
    """``scores - top`` in fp32 or wider ([batch, vocab] minus fp32 [batch, 1]): a fresh tensor, or
    this thread's ``slot`` scratch buffer (see ``logitkit.scratch``), which the caller must not keep."""
    half = scores.dtype.itemsize < 4
    if slot is None or (torch.is_grad_enabled() and (scores.requires_grad or top.requires_grad)):
        # out= refuses tensors that require grad; a half - fp32 subtraction is several times slower
        # on CPU than an fp32 copy, then in place.
        return scores.float().sub_(top) if half else torch.sub(scores, top)
    out = scratch(slot, tuple(scores.shape), torch.promote_types(scores.dtype, torch.float32), scores.device)
    return out.copy_(scores).sub_(top) if half else torch.sub(scores, top, out=out)


def positional_sum(terms: torch.Tensor) -> torch.Tensor:
    """Row sums [batch] (float64) that depend only on each term's position, not on the row's length.

    Blocks of ``SUM_BLOCK`` terms are summed in the terms' dtype, then the
    block sums by a running float64 sum, so trailing zeros change nothing.
    """
    pad = -terms.shape[-1] % SUM_BLOCK
    if pad:
        terms = torch.nn.functional.pad(terms, (0, pad))
    blocks = terms.view(terms.shape[0], -1, SUM_BLOCK).sum(dim=-1).double()
    return blocks.cumsum(dim=-1)[:, -1]


def entropy(scores: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of softmax(scores) in float64, given the row's log-normaliser."""
    logp = scores.to(torch.float64) - lse.unsqueeze(-1)
    p = logp.exp()
    return -positional_sum(torch.where(p > 0, p * logp, torch.zeros_like(p)))


def precise_log_normalizer(scores: torch.Tensor) -> torch.Tensor:
    """log Σ exp(scores) per row with fp32 terms summed in float64 [batch]: slower than
    ``log_normalizer``'s fp32 sum, for decisions that sit within rounding of a threshold."""
    top = scores.amax(dim=-1, keepdim=True).float()
    safe_top = finite_or_zero(top)
    terms = minus_top(scores, safe_top, "precise").exp_()
    # A float64 copy in scratch, then the sum: ``sum(dtype=float64)`` makes a fresh one.
    wide = scratch("precise_float64", tuple(terms.shape), torch.float64, terms.device)
    total = wide.copy_(terms).sum(dim=-1)
    return safe_top.squeeze(-1).double() + total.log()


@dataclass(frozen=True)
class SparseEdit:
    """New scores for a few tokens per row: ``values[r, j]`` at ``ids[r, j]`` ([batch, n] each).

    What a processor with ``fused = "edit"`` returns from ``sparse_edit``
    (repetition_penalty): the view is built from the unedited scores and the
    edit, so the vocabulary-sized copy the dense write makes is never made.
    Every repeat of an id in a row carries the same value.
    """

    ids: torch.Tensor
    values: torch.Tensor
    #: ``ids % lanes`` per lane count, computed once: the bounds and the write both need it.
    _lanes_of: dict[int, torch.Tensor] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    def lane_of_ids(self, lanes: int) -> torch.Tensor:
        """Each edited id's lane among ``lanes`` (``lane_maxima``'s layout)."""
        if lanes not in self._lanes_of:
            self._lanes_of[lanes] = self.ids % lanes
        return self._lanes_of[lanes]

    def applied(self, scores: torch.Tensor) -> torch.Tensor:
        """The dense edited scores (a copy)."""
        return scores.scatter(1, self.ids, self.values.to(scores.dtype))

    def rows(self, rows: torch.Tensor) -> SparseEdit:
        return SparseEdit(self.ids[rows], self.values[rows])

    def raised_maxima(self, maxima: torch.Tensor) -> torch.Tensor:
        """Lane maxima (``lane_maxima``) of the unedited scores, raised in place to every edited
        value in their lane: upper bounds of the edited row's (an edit may raise or lower a
        score). Pass a fresh tensor: it is returned, changed."""
        if maxima.shape[-1] == 0:
            return maxima  # a vocabulary shorter than a lane: nothing but the tail
        # A token of the short tail raises some lane's bound too: harmless, the tail is always read.
        lane = self.lane_of_ids(maxima.shape[-1])
        return maxima.scatter_reduce_(1, lane, self.values.to(maxima.dtype), reduce="amax")


class RowStats:
    """Statistics of a dense row, computed once and shared by every attempt on it.

    With an ``edit`` the row is ``edit.applied(base)``; it is made dense only
    when something needs every score (a full sort, the normaliser). With a
    ``divisor`` (a temperature folded in, see ``fused_divisor``) the row is
    ``base / divisor``: the maxima, the normaliser and every score the search
    reads are divided as they are read, which gives the dense division's
    values bit for bit (rounding is monotone, so the maximum of the quotients
    is the quotient of the maximum), and the row is made dense only for a
    full sort or the entropy.
    """

    def __init__(
        self, scores: torch.Tensor, edit: SparseEdit | None = None, divisor: float | None = None
    ) -> None:
        if edit is not None and divisor is not None:
            raise ValueError("a row takes an edit or a divisor, not both")
        self.base = scores
        self.edit = edit
        self.divisor = divisor
        self._scores: torch.Tensor | None = scores if edit is None and divisor is None else None
        self._top: torch.Tensor | None = None
        self._maxima: torch.Tensor | None = None
        self._lanes: torch.Tensor | None = None
        self._lse: torch.Tensor | None = None
        self._entropy: torch.Tensor | None = None

    @property
    def scores(self) -> torch.Tensor:
        """The row's dense scores, the edit applied or the divisor divided out."""
        if self._scores is None:
            if self.edit is not None:
                self._scores = self.edit.applied(self.base)
            else:
                assert self.divisor is not None  # no edit and no divisor: _scores is base
                self._scores = self.base / self.divisor
        return self._scores

    @property
    def folded(self) -> bool:
        """A divisor is folded in and the row has not been made dense: read ``base`` and divide."""
        return self.divisor is not None and self._scores is None

    def divided(self, part: torch.Tensor) -> torch.Tensor:
        """``part`` of ``base`` as the row's scores (divided by the folded divisor, if any)."""
        return part / self.divisor if self.divisor is not None else part

    def top(self) -> torch.Tensor:
        """The row's best score, [batch, 1], in the scores' dtype."""
        if self._top is None:
            vocab = self.base.shape[-1]
            if vocab >= THRESHOLD_DEPTH:
                # From the threshold lanes' maxima, which cost about one amax pass and which the
                # threshold search reads next: no second pass over the row.
                maxima = self.threshold_maxima()
                top = maxima.amax(dim=-1, keepdim=True)
                whole = maxima.shape[-1] * THRESHOLD_DEPTH
                if whole < vocab:
                    tail = self.divided(self.base[:, whole:]) if self.folded else self.scores[:, whole:]
                    top = torch.maximum(top, tail.amax(dim=-1, keepdim=True))
                self._top = top
            else:
                self._top = self.scores.amax(dim=-1, keepdim=True)
        return self._top

    def threshold_maxima(self) -> torch.Tensor:
        """The maxima of the threshold search's shallow lanes (``lane_maxima`` at
        ``THRESHOLD_DEPTH``), computed once."""
        if self._maxima is None:
            if self.folded:
                self._maxima = self.divided(lane_maxima(self.base, THRESHOLD_DEPTH))
            else:
                self._maxima = lane_maxima(self.scores, THRESHOLD_DEPTH)
        return self._maxima

    def lane_maxima(self) -> torch.Tensor:
        """Upper bounds of each lane's best score (see ``lane_maxima``), read without making an
        edited row dense; exact when there is no edit."""
        if self._lanes is None:
            if self.folded:
                self._lanes = self.divided(lane_maxima(self.base))
            elif self.edit is None or self._scores is not None:
                self._lanes = lane_maxima(self.scores)
            else:
                self._lanes = self.edit.raised_maxima(lane_maxima(self.base))
        return self._lanes

    def log_normalizer(self) -> torch.Tensor:
        """The dense row's log-normaliser; both paths take it from here, so one fp32 sum will do."""
        if self._lse is None:
            if self.folded:
                self._lse = log_normalizer(self.base, self.top(), False, self.divisor)
            else:
                self._lse = log_normalizer(self.scores, self.top(), positional=False)
        return self._lse

    @torch.no_grad()  # decides near ties only; its scratch buffers refuse grad
    def precise_log_normalizer(self, rows: torch.Tensor) -> torch.Tensor:
        """``precise_log_normalizer`` of the dense ``rows`` (indices): only rows near a tie need it,
        and its float64 sum costs several softmax passes per row."""
        scores = self.base if self.folded else self.scores
        picked = scratch(
            "precise_rows", (rows.shape[0], scores.shape[-1]), scores.dtype, scores.device
        )
        torch.index_select(scores, 0, rows, out=picked)
        if self.folded and self.divisor is not None:
            picked.div_(self.divisor)  # in place, the same rounding as the dense division
        return precise_log_normalizer(picked)

    @torch.no_grad()  # a statistic for thresholds; its scratch buffers refuse grad
    def entropy(self) -> torch.Tensor:
        """The dense row's entropy as ``lse - E[score]``: two fp32 passes and a blocked sum, not
        five float64 passes over the vocabulary (both paths take it from here)."""
        if self._entropy is None:
            lse = self.log_normalizer()
            top = self.top().float()
            safe_top = finite_or_zero(top)
            # E[score - top] rather than E[score]: the differences are small where the mass is,
            # so fp32 products keep their precision.
            below = minus_top(self.scores, safe_top, "entropy")
            weights = torch.exp(below, out=scratch("entropy_weights", tuple(below.shape), below.dtype, below.device))
            # A -inf score has weight 0; clamped, its product is 0 rather than NaN.
            below.clamp_(min=torch.finfo(torch.float32).min)
            weighted = positional_sum(below.mul_(weights))  # fp32 blocks of 32, then float64
            total = weights.sum(dim=-1).double()
            entropy = lse - safe_top.squeeze(-1).double() - weighted / total
            self._entropy = torch.where(total > 0, entropy, torch.zeros_like(entropy))
        return self._entropy

    def nan_rows(self, lanes: bool = False) -> torch.Tensor:
        """Bool [batch]: rows holding a NaN, read from the row's best score (amax propagates NaN),
        or from the top-k lanes' maxima when those are the ones the search will read."""
        if not lanes:
            return torch.isnan(self.top()).squeeze(-1)
        maxima = self.lane_maxima()  # with an edit, raised by its values: NaN among them shows
        whole = maxima.shape[-1] * CHUNK
        if whole == 0:
            return torch.isnan(self.base).any(dim=-1)
        found = torch.isnan(maxima.amax(dim=-1))
        if whole < self.base.shape[-1]:
            found |= torch.isnan(self.base[:, whole:]).any(dim=-1)
        return found

    def rows(self, rows: torch.Tensor) -> RowStats:
        """The statistics of a subset of rows (what is already computed carries over)."""
        if self.edit is not None and self._scores is None:
            part = RowStats(self.base[rows], self.edit.rows(rows))
        elif self.folded:
            part = RowStats(self.base[rows], divisor=self.divisor)
        else:
            part = RowStats(self.scores[rows])
        part._lanes = None if self._lanes is None else self._lanes[rows]
        part._top = None if self._top is None else self._top[rows]
        part._maxima = None if self._maxima is None else self._maxima[rows]
        part._lse = None if self._lse is None else self._lse[rows]
        part._entropy = None if self._entropy is None else self._entropy[rows]
        return part


#: The mass estimate reads a sample of about this many tokens of each row...
MASS_SAMPLE = 8192
#: ...in evenly spaced runs of this many neighbours (one cache line of fp32): single tokens at a
#: stride touch every cache line, so the sample cost a full pass over the row (measured).
MASS_RUN = 16
#: Its histogram: bins of a quarter logit below the row's best score, 32 logits deep.
MASS_BINS, MASS_BIN_WIDTH = 128, 0.25


def _mass_histogram(values: torch.Tensor, top: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """``weight * exp(values - top)`` summed per row in bins of ``MASS_BIN_WIDTH`` below ``top``
    ([batch, MASS_BINS]; the last bin takes everything deeper, NaN weighs nothing). The
    temporaries are a few hundred KB a row: in scratch buffers, they fault no pages in."""
    shape, device = tuple(values.shape), values.device
    if values.dtype != torch.float32:
        # One fp32 copy: a half - fp32 subtraction would make a fresh one for each of the two below.
        values = scratch("mass_values", shape, torch.float32, device).copy_(values)
    weights = torch.sub(values, top, out=scratch("mass_weights", shape, torch.float32, device))
    weights.exp_()
    if weight != 1.0:
        weights.mul_(weight)
    weights.nan_to_num_(nan=0.0)
    depth = torch.sub(top, values, out=scratch("mass_depth", shape, torch.float32, device))
    depth.mul_(1.0 / MASS_BIN_WIDTH).nan_to_num_(nan=MASS_BINS - 1).clamp_(0, MASS_BINS - 1)
    bins = scratch("mass_bins", shape, torch.int64, device).copy_(depth)  # truncates, as long() does
    hist = torch.zeros(shape[0], MASS_BINS, device=device)
    return hist.scatter_add_(1, bins, weights)


@torch.no_grad()  # a threshold, never differentiated; its scratch buffers refuse grad
def mass_threshold(scores: torch.Tensor, stats: RowStats, mass: float) -> torch.Tensor:
    """A score per row ([batch, 1]) such that the tokens at or above it hold about ``mass`` of the row.

    An estimate that reads a small part of the row: a histogram of a
    sample's probability by distance below the best score gives the mass
    *below* each bin edge (many small tokens: the estimate's accurate side);
    the mass above is the row's exact total less that. A view built on it is
    checked like any other, and rows where the estimate fell short are tried
    again lower. -inf when the mass lies deeper than the histogram reaches.
    """
    source = stats.base if stats.folded else scores  # a folded divisor is divided as read
    vocab = source.shape[-1]
    period = max(MASS_RUN, vocab // (MASS_SAMPLE // MASS_RUN) // MASS_RUN * MASS_RUN)
    runs = vocab // period
    top = stats.top().float()
    if runs == 0:  # a vocabulary shorter than one run: read it whole
        sample, weight = source, 1.0
    else:
        # A copy (flatten of a strided view): cache-line runs rather than single tokens.
        runs_view = source[:, : runs * period].unflatten(-1, (runs, period))  # type: ignore[no-untyped-call]
        sample, weight = runs_view[..., :MASS_RUN].flatten(1), period / MASS_RUN
    sample = (stats.divided(sample) if stats.folded else sample).float()
    hist = _mass_histogram(sample, top, weight)
    below = hist.flip(-1).cumsum_(dim=-1).flip(-1)[:, 1:]  # the mass below each bin's lower edge
    total = (stats.log_normalizer().unsqueeze(-1) - top.double()).exp()
    allowed = (total * (1.0 - mass)).float()
    last = (below > allowed).sum(dim=-1, keepdim=True)  # the first bin with little enough below it
    threshold = top - (last + 1).float() * MASS_BIN_WIDTH
    return torch.where(last >= MASS_BINS - 1, torch.full_like(threshold, NEG_INF), threshold)


@torch.no_grad()  # a threshold, never differentiated; its scratch buffers refuse grad
def mass_bound_threshold(stats: RowStats, mass: float) -> torch.Tensor:
    """A score per row ([batch, 1]) such that the tokens at or above it surely hold ``mass`` of
    the row, or -inf where the bound below cannot show it.

    Read from the threshold lanes' maxima: each is a token of the row, so the
    tokens at or above an edge hold at least the mass of the maxima at or
    above it. A histogram of the maxima's probability by distance below the
    best score gives that bound at every bin edge; the threshold is the
    highest edge where it reaches ``mass``. Nothing is estimated, so a row's
    nucleus never falls outside (up to rounding, which the view's check
    catches). Where a nucleus holds most tokens of many lanes (flat rows),
    the bound reaches ``mass`` late or not at all: those rows go to the next
    hint.
    """
    maxima = stats.threshold_maxima()
    top = stats.top().float()
    if maxima.shape[-1] == 0:
        return torch.full_like(top, NEG_INF)
    above = _mass_histogram(maxima, top).cumsum_(dim=-1)  # the bound at each bin's lower edge
    needed = ((stats.log_normalizer().unsqueeze(-1) - top.double()).exp() * mass).float()
    first = (above < needed).sum(dim=-1, keepdim=True)  # the first bin whose lower edge holds it
    threshold = top - (first + 1).float() * MASS_BIN_WIDTH
    return torch.where(first >= MASS_BINS, torch.full_like(threshold, NEG_INF), threshold)


#: Tokens per lane of the top-k search (``chunked_topk``).
CHUNK = 32
#: Tokens per lane of the threshold search (``tokens_at_least``): shallow lanes, so that few of
#: them reach a threshold a nucleus deep. For 2,000 tokens kept of 151,936, lanes of 8 tokens
#: read a tenth of the row, lanes of 32 a third (measured).
THRESHOLD_DEPTH = 8


def lane_maxima(scores: torch.Tensor, depth: int = CHUNK) -> torch.Tensor:
    """The maximum of each lane ([batch, vocab // depth]): lane j holds tokens j, j + L, j + 2L, ...
    (L lanes, ``depth`` tokens each) of the whole lanes' span. One pass, about half the cost of
    contiguous chunks' maxima: the reduction runs across rows of contiguous memory (measured),
    and in fp16/bf16 it is vectorised too, with no fp32 copy."""
    lanes = scores.shape[-1] // depth
    body = scores[:, : lanes * depth].reshape(scores.shape[0], depth, lanes)
    return body.amax(dim=1)


def chunked_topk(
    scores: torch.Tensor,
    m: int,
    maxima: torch.Tensor | None = None,
    edit: SparseEdit | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``torch.topk(scores, m)`` values and ids, reading the row once, and a bound on the rest.

    The m best scores lie in the m lanes (``lane_maxima``) with the best
    maxima (a lane whose maximum is below the m-th best maximum holds nothing
    above m elements), so one ``amax`` pass narrows the search to m * CHUNK
    scores (``maxima``: that pass, when already made). Ties at the edge may
    pick different ids than ``torch.topk`` would; the view's check handles
    ties either way.

    With an ``edit`` the row searched is ``edit.applied(scores)`` and
    ``maxima`` are upper bounds of its lane maxima: the edit is written into
    the lanes read, and the third value is the best bound of a lane not read
    ([batch, 1]), above which the result is sure. It is None without an
    edit: then nothing outside beats the m-th value.
    """
    vocab = scores.shape[-1]
    chunks = vocab // CHUNK
    if m * 8 > chunks:
        dense = scores if edit is None else edit.applied(scores)
        values, ids = torch.topk(dense, m, dim=-1, sorted=True)
        return values, ids, None
    body = scores[:, : chunks * CHUNK].reshape(scores.shape[0], CHUNK, chunks)
    if maxima is None:
        maxima = lane_maxima(scores) if edit is None else edit.raised_maxima(lane_maxima(scores))
    outside: torch.Tensor | None = None
    if edit is None:
        best_chunks = top_lanes(maxima, m)[1]
    else:
        # One lane more than read: its bound is the best any unread token can score. There is
        # always one: m * 8 <= chunks here (the dense branch above takes the rest).
        best_values, best_lanes = top_lanes(maxima, m + 1)
        best_chunks, outside = best_lanes[:, :m], best_values[:, m : m + 1]
    # Position i * m + r of what is read: the i-th token of the r-th lane read, then the tail.
    picked = body.gather(2, best_chunks.unsqueeze(1).expand(-1, CHUNK, -1)).flatten(1)
    if chunks * CHUNK < vocab:  # the short last chunk is always searched
        picked = torch.cat([picked, scores[:, chunks * CHUNK :]], dim=1)
    if edit is not None:
        picked = _edit_picked(picked, best_chunks, chunks, edit)
    values, where = torch.topk(picked, m, dim=-1, sorted=True)
    # Token ids of the winners only: lane token i of lane r is i * lanes + r.
    lane, token = where % m, where // m
    ids = token * chunks + best_chunks.gather(1, lane.clamp(max=m - 1))
    if chunks * CHUNK < vocab:
        in_tail = where >= CHUNK * m
        ids = torch.where(in_tail, chunks * CHUNK + where - CHUNK * m, ids)
    return values, ids, outside


#: Lanes per group of ``top_lanes``' first level, and the batch from which the two levels pay:
#: at batch 8 they take 0.20 ms where one ``topk`` over 4,748 lane maxima takes 0.29 ms, at
#: batch 1 0.06 ms against 0.03 (measured).
LANE_GROUP, TWO_LEVEL_ROWS = 4, 4


def top_lanes(maxima: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n`` best lane maxima per row and their lanes, best first: ``torch.topk``'s values.

    Two levels: the best ``n`` groups of ``LANE_GROUP`` lanes (group j holds
    lanes j, j + G, ...) hold the ``n`` best lanes, so ``topk`` runs over the
    group maxima and then over those groups' lanes only. With ties the lanes
    picked may differ from ``topk``'s, never the values (every group left out
    is beaten by ``n`` groups whose best lanes are at least as good).
    """
    batch, lanes = maxima.shape
    groups = lanes // LANE_GROUP
    if batch < TWO_LEVEL_ROWS or n * 8 > groups:
        found = torch.topk(maxima, n, dim=-1)
        return found.values, found.indices
    body = maxima[:, : groups * LANE_GROUP].view(batch, LANE_GROUP, groups)
    best_groups = torch.topk(body.amax(dim=1), n, dim=-1, sorted=False).indices
    levels = torch.arange(LANE_GROUP, device=maxima.device).view(1, LANE_GROUP, 1) * groups
    members = (best_groups.unsqueeze(1) + levels).flatten(1)
    if groups * LANE_GROUP < lanes:  # the short last group is always read
        rest = torch.arange(groups * LANE_GROUP, lanes, device=maxima.device)
        members = torch.cat([members, rest.expand(batch, -1)], dim=1)
    values, where = torch.topk(maxima.gather(1, members), n, dim=-1)
    return values, members.gather(1, where)


def _edit_picked(
    picked: torch.Tensor, best_chunks: torch.Tensor, chunks: int, edit: SparseEdit
) -> torch.Tensor:
    """``picked`` (the lanes ``best_chunks`` read, then the tail) with the edit written in."""
    batch, m = best_chunks.shape
    # Each lane's place among those read (-1: not read), looked up for every edited token; in
    # scratch, as a fresh [batch, lanes] table faults its pages in.
    place = scratch("edit_place", (batch, chunks), torch.int64, picked.device).fill_(-1)
    place.scatter_(1, best_chunks, torch.arange(m, device=picked.device).expand(batch, -1))
    rank = place.gather(1, edit.lane_of_ids(chunks))
    slot = (edit.ids // chunks) * m + rank
    read = rank >= 0
    width = picked.shape[-1]
    if width > CHUNK * m:  # a short tail, read whole after the lanes
        in_tail = edit.ids >= chunks * CHUNK
        slot = torch.where(in_tail, CHUNK * m + edit.ids - chunks * CHUNK, slot)
        read |= in_tail
    # Edits of tokens not read go to a scratch column, dropped after the write.
    slot = torch.where(read, slot, width)
    padded = torch.cat([picked, picked[:, :1]], dim=1)
    return padded.scatter(1, slot, edit.values.to(picked.dtype))[:, :width]


def tokens_at_least(
    scores: torch.Tensor,
    threshold: torch.Tensor,
    maxima: torch.Tensor,
    divisor: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(rows, cols)`` of every score at or above its row's threshold, by row then column.

    The same as ``(scores >= threshold).nonzero()``, which on CPU costs about
    three softmax passes; here only the lanes (``maxima``: the threshold
    lanes' maxima) whose maximum reaches the threshold are read. With a
    ``divisor`` the row searched is ``scores / divisor`` (``maxima`` its).
    """
    batch, vocab = scores.shape
    lanes = maxima.shape[-1]
    hit_rows, hit_lanes = (maxima >= threshold.to(maxima.dtype)).nonzero(as_tuple=True)
    # Read level by level ([depth, hits]): nonzero then lists each level's hits by row, then lane.
    levels = torch.arange(THRESHOLD_DEPTH, device=scores.device).unsqueeze(-1) * lanes
    picked = scores.contiguous().take(levels + (hit_rows * vocab + hit_lanes))
    if divisor is not None:
        picked = picked / divisor
    # index_select and scatter_ rather than t[idx] and t[idx] = v: a third of the cost on CPU.
    level, which = (picked >= threshold[:, 0].index_select(0, hit_rows)).nonzero(as_tuple=True)
    rows = hit_rows.index_select(0, which)
    cols = hit_lanes.index_select(0, which) + level * lanes
    whole = lanes * THRESHOLD_DEPTH
    if whole < vocab:  # the short tail is searched directly: a last level
        tail = scores[:, whole:] if divisor is None else scores[:, whole:] / divisor
        tail_rows, tail_cols = (tail >= threshold).nonzero(as_tuple=True)
        rows = torch.cat([rows, tail_rows])
        cols = torch.cat([cols, tail_cols + whole])
        level = torch.cat([level, torch.full_like(tail_rows, THRESHOLD_DEPTH)])
    return _level_major_to_row_major(rows, cols, level, batch)


def _level_major_to_row_major(
    rows: torch.Tensor, cols: torch.Tensor, level: torch.Tensor, batch: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reorder hits listed by (level, row, column) into (row, column) order, by counting, not
    sorting (a sort of the hits costs more than the whole search): a level's columns all lie
    above the previous level's."""
    levels = THRESHOLD_DEPTH + 1
    group = level * batch + rows  # non-decreasing along the list
    sizes = torch.bincount(group, minlength=levels * batch)
    first_in_list = sizes.cumsum(0) - sizes
    by_row = sizes.view(levels, batch).t().flatten()  # the same groups, (row, level) order
    first_in_output = by_row.cumsum(0) - by_row
    rank = torch.arange(group.shape[0], device=rows.device) - first_in_list.index_select(0, group)
    destination = first_in_output.index_select(0, rows * levels + level) + rank
    # destination is a permutation: each slot is written once.
    return (
        torch.empty_like(rows).scatter_(0, destination, rows),
        torch.empty_like(cols).scatter_(0, destination, cols),
    )


def _stand_in_for_unread(values: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """Cut each row after its last value above ``outside`` and put ``outside`` itself there: it
    stands for the best token not read, as ``at_least``'s sentinel does (the processors must drop
    it for the row to be sure)."""
    above = (values > outside).sum(dim=-1, keepdim=True)
    positions = torch.arange(values.shape[-1], device=values.device)
    cut = values.masked_fill(positions >= above, NEG_INF)
    short = above < values.shape[-1]
    at = above.clamp(max=values.shape[-1] - 1)
    stand_in = torch.where(short, outside.to(values.dtype), cut.gather(-1, at))
    return cut.scatter(-1, at, stand_in)


def canonical_order(values: torch.Tensor, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Re-sort a candidate set already sorted by score (descending) into (score desc, token id desc) order."""
    kernel = native.kernel("canonical_order", values)
    if kernel is not None:
        # One pass per row on CPU (logitkit.native), where the tie check and two sorts are 7 ops.
        ordered_values, ordered_ids = kernel(values, ids)
        return ordered_values, ordered_ids
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
        if stats is not None:
            scores = stats.scores  # an edited row is made dense here
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
        edit = stats.edit if stats is not None else None
        maxima = stats.lane_maxima() if stats is not None else None
        base = stats.base if stats is not None else scores
        kernel = native.kernel("top_view", base) if m * 8 <= vocab // CHUNK else None
        if kernel is not None:
            # The same search in one call (logitkit.native): canonical order, stand-in, sure prefix.
            lanes = maxima if maxima is not None else lane_maxima(base)
            edit_ids = edit.ids if edit is not None else base.new_zeros((base.shape[0], 0), dtype=torch.int64)
            edit_values = edit.values.to(base.dtype) if edit is not None else base.new_zeros((base.shape[0], 0))
            values, ids, check_at = kernel(base.contiguous(), lanes.contiguous(), edit_ids, edit_values, m, CHUNK)
            return cls(values, ids, vocab, False, check_at, stats or RowStats(scores))
        values, ids, outside = chunked_topk(base, m, maxima, edit)
        values, ids = canonical_order(values, ids)
        if outside is not None and bool((values[:, -1:] <= outside).any()):
            values = _stand_in_for_unread(values, outside)
        # Sure: above the last value and (with an edit) above every lane not read; the values
        # descend, so that is one count (behind a stand-in the padding is lower still).
        last = values[:, -1:] if outside is None else torch.maximum(values[:, -1:], outside)
        check_at = (values > last).sum(dim=-1)
        return cls(values, ids, vocab, False, check_at, stats or RowStats(scores))

    @classmethod
    def at_least(
        cls, scores: torch.Tensor, threshold: torch.Tensor, stats: RowStats | None = None
    ) -> tuple[CandidateView, torch.Tensor] | None:
        """Every token scoring at least its row's ``threshold`` ([batch, 1]), then a sentinel.

        Returns the view of the rows it fits (fewer tokens than a quarter of
        the vocabulary, finite threshold) and their indices; None when no row
        fits. Every token outside scores below the threshold, so every
        position is sure. The sentinel, placed right after the real
        candidates, has the threshold itself as its score: it stands for the
        best token outside, and the processors dropping it proves they drop
        every token outside. It carries a real candidate's id with a -inf
        score once dropped, which ``densify`` (a max) and sampling ignore.
        """
        if stats is not None:
            # An edited row is made dense here; a folded divisor is divided as the search reads.
            scores = stats.base if stats.folded else stats.scores
        divisor = stats.divisor if stats is not None and stats.folded else None
        batch, vocab = scores.shape
        # Compare and place the sentinel in one dtype.
        threshold = round_down(threshold, scores.dtype)
        # A row without a finite threshold is left out (+inf finds nothing) rather than read whole.
        search = torch.where(torch.isfinite(threshold), threshold, float("inf"))
        stats = stats or RowStats(scores)
        kernel = native.kernel("at_least", scores)
        if kernel is not None:
            return cls._at_least_native(kernel, scores, threshold, search, stats, divisor)
        rows, cols = tokens_at_least(scores, search, stats.threshold_maxima(), divisor)
        counts = torch.bincount(rows, minlength=batch)
        fits = (counts < vocab * FULL_SORT_FRACTION) & (counts > 0)
        covered = fits.nonzero().flatten()
        if covered.numel() == 0:
            return None
        if covered.numel() < batch:
            # Renumber the fitting rows 0..n-1 and drop the rest.
            scores, threshold, counts = scores[covered], threshold[covered], counts[covered]
            renumber = torch.full((batch,), -1, dtype=torch.int64, device=scores.device)
            renumber[covered] = torch.arange(covered.numel(), device=scores.device)
            picked = renumber[rows] >= 0
            rows, cols = renumber[rows[picked]], cols[picked]
            stats = stats.rows(covered) if stats is not None else None
        width = int(counts.max()) + 1
        starts = counts.cumsum(0) - counts
        # Ids ascend within a row; filling each row from its end leaves them descending,
        # so one stable sort by score gives the canonical order.
        slots = (counts - 1).index_select(0, rows) - (
            torch.arange(rows.shape[0], device=scores.device) - starts.index_select(0, rows)
        )
        # Each (row, slot) once: flat scatter_, cheaper on CPU than values[rows, slots] = ...
        at = rows * width + slots
        values = torch.full(
            (scores.shape[0], width), NEG_INF, dtype=scores.dtype, device=scores.device
        )
        picked = scores.contiguous().take(rows * vocab + cols)
        values.view(-1).scatter_(0, at, picked if divisor is None else picked / divisor)
        ids = cols.index_select(0, starts).unsqueeze(-1).repeat(1, width)
        ids.view(-1).scatter_(0, at, cols)
        values, by_value = torch.sort(values, dim=-1, descending=True, stable=True)
        ids = ids.gather(-1, by_value)
        sentinel = counts.unsqueeze(-1)
        values = values.scatter(-1, sentinel, threshold)
        view = cls(values, ids, vocab, False, counts, stats or RowStats(scores))
        return view, covered

    @classmethod
    def _at_least_native(
        cls,
        kernel: Any,
        scores: torch.Tensor,
        threshold: torch.Tensor,
        search: torch.Tensor,
        stats: RowStats,
        divisor: float | None,
    ) -> tuple[CandidateView, torch.Tensor] | None:
        """``at_least`` by the CPU kernel (``logitkit.native``): the same view, bit for bit."""
        batch, vocab = scores.shape
        # A count fits below vocab * FULL_SORT_FRACTION exactly when it is below its ceiling.
        limit = math.ceil(vocab * FULL_SORT_FRACTION)
        values, ids, counts = kernel(
            scores.contiguous(),
            stats.threshold_maxima().contiguous(),
            search.reshape(-1).float(),
            threshold.reshape(-1),
            divisor or 0.0,
            THRESHOLD_DEPTH,
            limit,
        )
        fitting = [row for row, count in enumerate(counts.tolist()) if 0 < count < limit]
        if not fitting:
            return None
        covered = torch.tensor(fitting, dtype=torch.int64, device=scores.device)
        if len(fitting) < batch:
            values, ids, counts = values[covered], ids[covered], counts[covered]
            stats = stats.rows(covered)
        return cls(values, ids, vocab, False, counts, stats), covered

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

    def precise_log_probs(self, rows: torch.Tensor) -> torch.Tensor:
        """``log_probs`` with the normaliser summed in float64 in ``rows`` (bool [batch]), the rows
        whose decision is a near tie; the other rows keep the ordinary normaliser."""
        where = rows.nonzero().flatten()
        if self.stats is not None:
            precise = self.stats.precise_log_normalizer(where)
        elif self.complete:
            precise = precise_log_normalizer(self.values[where])
        else:
            raise RuntimeError("a partial view whose scores were rescaled has no row statistics")
        lse = self.log_normalizer().clone()
        lse[where] = precise
        return self.values.to(torch.float64) - lse.unsqueeze(-1)

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
        values, ids, check_at = (
            torch.where(mask, self.values, NEG_INF),
            self.token_ids,
            self.check_at,
        )
        if compact:
            order = torch.sort((~mask).to(torch.int8), dim=-1, stable=True).indices
            values, ids = values.gather(-1, order), ids.gather(-1, order)
            if not self.complete:  # the deciding position moves with its token
                check_at = (order == check_at.unsqueeze(-1)).to(torch.int8).argmax(dim=-1)
        # A partial view keeps its statistics: the runner completes it or starts over. So does a
        # complete one that dropped nothing still alive: its row is unchanged, and the next
        # processor must read the statistics the dense path gives it (the dense row's), not
        # recompute them from the view in another summation order (a near tie then flips).
        stats = self.stats
        if self.complete and stats is not None and bool(((self.values > NEG_INF) & ~mask).any()):
            stats = None
        return CandidateView(values, ids, self.vocab_size, self.complete, check_at, stats)

    def rescaled(self, values: torch.Tensor) -> CandidateView:
        """A view with new values from an order-preserving elementwise change (e.g. temperature).

        Rounding can turn distinct scores into ties, so the canonical order and
        the sure prefix are recomputed. The dense row's statistics no longer apply.
        """
        values, ids = canonical_order(values, self.token_ids)
        check_at = self.check_at
        if not self.complete:
            # Ties the change makes with the deciding position become unsure too.
            deciding = values.gather(-1, check_at.clamp(max=self.width - 1).unsqueeze(-1))
            check_at = (values > deciding).sum(dim=-1)
        return CandidateView(values, ids, self.vocab_size, self.complete, check_at, None)

    # -- leaving the view ----------------------------------------------------------------

    def settled(self) -> torch.Tensor:
        """Bool [batch]: rows whose deciding position is dropped (so the whole tail is)."""
        if self.complete:
            return torch.ones_like(self.check_at, dtype=torch.bool)
        at = self.check_at.clamp(max=self.width - 1).unsqueeze(-1)
        return self.values.gather(-1, at).squeeze(-1) == NEG_INF

    def completed(self) -> CandidateView:
        return CandidateView(self.values, self.token_ids, self.vocab_size, True, self.check_at, None)

    def densify(self, like: torch.Tensor) -> torch.Tensor:
        """Dense scores shaped like ``like``: the view's values, -inf everywhere else."""
        if not self.complete:
            raise RuntimeError("only a complete view can be made dense")
        out = torch.full_like(like, NEG_INF)
        return out.scatter_reduce(-1, self.token_ids, self.values.to(like.dtype), reduce="amax")

    def trimmed(self) -> CandidateView:
        """A complete view without its trailing columns that are dropped in every row."""
        if self.width <= TRIM_WIDTH:
            return self  # sampling so few columns costs no more than measuring how many are left
        alive = self.values != NEG_INF  # NaN stays: the dense path keeps it for the row guard
        positions = torch.arange(1, self.width + 1, device=self.values.device)
        width = max(int((alive * positions).amax()), 1)
        if width == self.width:
            return self
        return replace(self, values=self.values[:, :width], token_ids=self.token_ids[:, :width])

    def rows(self, rows: torch.Tensor) -> CandidateView:
        """The view of a subset of the rows (a complete view)."""
        if not self.complete:
            raise RuntimeError("only a complete view can be split by rows")
        return replace(
            self,
            values=self.values[rows],
            token_ids=self.token_ids[rows],
            check_at=self.check_at[rows],
        )

    @classmethod
    def merged(
        cls, parts: Sequence[tuple[torch.Tensor, CandidateView]], batch: int
    ) -> CandidateView:
        """One complete view from complete views of disjoint row sets (``(rows, view)``) covering the batch."""
        parts = [(rows, view.trimmed()) for rows, view in parts]
        width = max(view.width for _, view in parts)
        first = parts[0][1]
        values = torch.full(
            (batch, width), NEG_INF, dtype=first.values.dtype, device=first.values.device
        )
        ids = torch.zeros((batch, width), dtype=first.token_ids.dtype, device=first.values.device)
        for rows, view in parts:
            values[rows, : view.width] = view.values
            # Padding repeats a real id of the row with a -inf score: densify (a max) and sampling ignore it.
            ids[rows] = view.token_ids[:, :1].expand(-1, width)
            ids[rows, : view.width] = view.token_ids
        check_at = torch.zeros(batch, dtype=torch.int64, device=first.values.device)
        return cls(values, ids, first.vocab_size, True, check_at, None)

    def alive(self) -> torch.Tensor:
        """Bool [batch]: rows that still have a token to pick."""
        return (self.values > NEG_INF).any(dim=-1)


def fused_kind(processor: Processor) -> str | None:
    """``"edit"``, ``"scale"``, ``"truncate"`` or None when the processor has no fast path right now."""
    kind = getattr(processor, "fused", None)
    method = "sparse_edit" if kind == "edit" else "apply_sorted"
    if kind not in ("edit", "scale", "truncate") or not hasattr(processor, method):
        return None
    usable = getattr(processor, "fused_usable", None)
    if usable is not None and not usable():
        return None
    return str(kind)


def fused_runs(processors: Sequence[Processor]) -> list[tuple[int, int]]:
    """``(start, stop)`` of each maximal run of fast-path processors holding a truncation.

    A processor with ``fused_after_truncation = True`` (the output constraints) joins
    a run only behind an earlier truncation of it, where the view is complete; as the
    run's first truncation it would force a full sort, so there it runs densely.
    """
    runs: list[tuple[int, int]] = []
    start = None
    for i, processor in enumerate([*processors, None]):
        kind = fused_kind(processor) if processor is not None else None
        if kind is not None and getattr(processor, "fused_after_truncation", False) and not (
            start is not None and any(fused_kind(p) == "truncate" for p in processors[start:i])
        ):
            kind = None
        # An edit can only open a run: the view is built from the scores it edits.
        ends = kind is None or (kind == "edit" and start is not None)
        if ends and start is not None:
            if any(fused_kind(p) == "truncate" for p in processors[start:i]):
                runs.append((start, i))
            start = None
        if kind is not None and start is None:
            start = i
    return runs


def _cap_of(processor: Processor, vocab: int) -> int | None:
    hint = getattr(processor, "fused_candidates", None)
    return hint(vocab) if hint is not None else None


#: Builds a view of the given rows: ``(view, covered)`` (covered rows' indices, None for all) or None.
ViewPlan = Callable[[torch.Tensor, RowStats], "tuple[CandidateView, torch.Tensor | None] | None"]


def _plans(
    chain: Sequence[Processor], capped: bool, vocab: int, dtype: torch.dtype
) -> Iterator[ViewPlan]:
    """Ever larger views, ending with the full sort; each is tried on the rows still unsettled."""
    if capped:
        # One past the largest cap (top_k's k) shows whether a tie crosses the edge.
        m = max(int(c) + 1 for p in chain if (c := _cap_of(p, vocab)) is not None)
        if dtype.itemsize < 4:
            m *= 2  # fp16/bf16 scores tie often; room for a tie group at the edge saves a retry
        while m < vocab * FULL_SORT_FRACTION:
            yield lambda scores, stats, m=m: (CandidateView.top(scores, m, stats), None)  # type: ignore[misc]
            m *= 4
    elif not getattr(chain[0], "needs_complete_view", False):
        yield from _threshold_plans(chain[0])
    yield lambda scores, stats: (CandidateView.full(scores, stats), None)


def _threshold_plans(first: Processor) -> Iterator[ViewPlan]:
    """Views of every token above a per-row threshold: the processor's own, else spans below the best."""
    hint = getattr(first, "fused_threshold", None)
    if hint is not None:
        for attempt in range(MAX_HINTS):
            yield lambda scores, stats, a=attempt: _at_least(hint(scores, stats, a), scores, stats)  # type: ignore[misc]
        return
    span_hint = getattr(first, "fused_span", None)
    first_span = span_hint() if span_hint is not None else None
    spans = ([first_span] if first_span is not None else []) + [
        s for s in SPANS if first_span is None or s > first_span
    ]
    for span in spans:
        yield lambda scores, stats, span=span: _at_least(stats.top() - span, scores, stats)  # type: ignore[misc]


def _at_least(
    threshold: torch.Tensor | None, scores: torch.Tensor, stats: RowStats
) -> tuple[CandidateView, torch.Tensor | None] | None:
    if threshold is None:
        return None
    built = CandidateView.at_least(scores, threshold, stats)
    if built is None:
        return None
    view, covered = built
    return view, (None if covered.numel() == scores.shape[0] else covered)


def rows_of(ctx: StepContext, rows: torch.Tensor, chain: Sequence[Processor] = ()) -> StepContext:
    """The context of a subset of the batch: every per-row tensor field indexed by ``rows``.

    When a processor of ``chain`` keeps row state (an output constraint's parsers),
    the batch state is narrowed to ``rows`` too.
    """
    batch = ctx.batch_size
    changes: dict[str, Any] = {
        f.name: value[rows]
        for f in dataclasses.fields(ctx)
        if isinstance(value := getattr(ctx, f.name), torch.Tensor)
        and value.dim() > 0
        and value.shape[0] == batch
    }
    if ctx.state is not None and any(ctx.state.row_state(p) is not None for p in chain):
        changes["state"] = ctx.state.subset(rows)
    return dataclasses.replace(ctx, **changes)


def run_fused(
    processors: Sequence[Processor], scores: torch.Tensor, ctx: StepContext
) -> CandidateView:
    """Run a fused run of processors on ``scores``; returns a complete view.

    Each view is tried on the rows not settled yet, so one odd row costs a
    larger view (at worst a full sort) for itself, not for the whole batch.
    """
    batch, vocab = scores.shape
    first = next(i for i, p in enumerate(processors) if fused_kind(p) == "truncate")
    head, body = list(processors[:first]), list(processors[first:])
    capped = _cap_of(body[0], vocab) is not None
    edit: SparseEdit | None = None
    divisor = _foldable_divisor(head, body[0]) if not capped else None
    if not capped and divisor is None:
        # The first truncation needs row statistics: apply the head (edit, scaling) densely.
        for processor in head:
            scores = processor.apply(scores, ctx)
        head = []
    elif capped and head and fused_kind(head[0]) == "edit":
        # A top-k view reads only the best chunks: the edit is written into those alone.
        edit = head[0].sparse_edit(scores, ctx)  # type: ignore[attr-defined]
    chain = head + body
    stats = RowStats(scores, edit, divisor)
    if edit is not None or divisor is not None:
        chain = chain[1:]  # the view carries the edit, or the statistics the divisor
    pending: torch.Tensor | None = None  # rows still unsettled; None is all of them
    done: list[tuple[torch.Tensor, CandidateView]] = []
    nan_rows = stats.nan_rows(lanes=capped)  # the maxima the first view will read
    if bool(nan_rows.any()):
        # A view orders NaN as the best score, while the dense processors' comparisons with NaN
        # keep or drop differently (transformers' top_k then drops nothing): NaN rows go dense.
        with_nan = nan_rows.nonzero().flatten()
        dense_chain = head + body  # with the edit, run densely
        done.append(
            (with_nan, _dense_view(dense_chain, scores[with_nan], rows_of(ctx, with_nan, dense_chain)))
        )
        if with_nan.numel() == batch:
            return CandidateView.merged(done, batch)
        pending = (~nan_rows).nonzero().flatten()
    for plan in _plans(chain, capped, vocab, scores.dtype):
        part = (scores, stats) if pending is None else (scores[pending], stats.rows(pending))
        built = plan(*part)
        if built is None:
            continue
        view, covered = built
        rows = pending if covered is None else (covered if pending is None else pending[covered])
        result, settled = _attempt(chain, view, ctx if rows is None else rows_of(ctx, rows, chain))
        if rows is None and settled is None:
            return result.trimmed()
        everyone = torch.arange(batch, device=scores.device) if rows is None else rows
        if settled is not None:
            result, everyone = result.rows(settled), everyone[settled]
        if everyone.numel():
            done.append((everyone, result))
        left = torch.ones(batch, dtype=torch.bool, device=scores.device)
        for finished, _ in done:
            left[finished] = False
        if not bool(left.any()):
            return CandidateView.merged(done, batch)
        pending = left.nonzero().flatten()
        log.debug(
            "candidate view of %d too small for %d rows; growing", view.width, pending.numel()
        )
    raise AssertionError("a full view always settles")


def _foldable_divisor(head: Sequence[Processor], first: Processor) -> float | None:
    """The divisor of a head that is one scaling processor dividing every score by a positive
    constant (temperature: ``fused_divisor``), when the first truncation's threshold hint reads
    the row only through its statistics (``fused_threshold_from_stats``): the statistics then
    divide as they read, and the vocabulary-sized quotient is never made."""
    if len(head) != 1 or not hasattr(head[0], "fused_divisor"):
        return None
    if hasattr(first, "fused_threshold") and not getattr(first, "fused_threshold_from_stats", False):
        return None
    divisor = head[0].fused_divisor()
    return float(divisor) if divisor is not None and divisor > 0 else None


def _dense_view(chain: Sequence[Processor], scores: torch.Tensor, ctx: StepContext) -> CandidateView:
    """The chain run densely, as the dense path runs it, wrapped as a complete view."""
    for processor in chain:
        scores = apply_checked(processor, scores, ctx)
    return CandidateView.full(scores)


def _attempt(
    chain: Sequence[Processor], view: CandidateView, ctx: StepContext
) -> tuple[CandidateView, torch.Tensor | None]:
    """The view after the chain and the indices of its settled rows (None: every row).

    A row is settled when every truncation on a partial view dropped its
    deciding position; the other rows' results are to be discarded.
    """
    ok: torch.Tensor | None = None
    for processor in chain:
        if not view.complete and getattr(processor, "needs_complete_view", False):
            return view, torch.zeros(0, dtype=torch.int64, device=view.values.device)
        view = processor.apply_sorted(view, ctx)  # type: ignore[attr-defined]
        if not view.complete and fused_kind(processor) == "truncate":
            settled = view.settled()
            ok = settled if ok is None else ok & settled
            view = view.completed()
    if not view.complete:
        raise RuntimeError("a fused run ended with a partial view")
    if ok is None or bool(ok.all()):
        return view, None
    return view, ok.nonzero().flatten()


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
    # Empty rows, NaN and +inf go to the dense path, where the pipeline's empty-row guard handles them:
    # each makes the row's maximum non-finite (amax propagates NaN).
    best = view.values.amax(dim=-1)
    if not bool(torch.isfinite(best).all()):  # NaN is not finite either
        return None
    tokens: torch.Tensor = check_tokens(selector, pick(view, ctx), view.values.shape[0], view.vocab_size)
    return tokens
