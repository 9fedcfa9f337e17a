"""logitkit's CPU kernels (``logitkit.native``) give the torch path's results bit for bit, and
build on this machine (CI has a compiler: a kernel that fails to build fails here)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logitkit import fastpath, native
from logitkit.fastpath import CandidateView, RowStats

NEG_INF = float("-inf")


def test_the_kernels_build_here() -> None:
    assert native.kernels() is not None, f"the CPU kernels did not build: {native.build_error()}"


def test_the_kernels_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGITKIT_NATIVE", "0")
    assert native.kernel("at_least", torch.zeros(2, 8)) is None
    monkeypatch.setenv("LOGITKIT_NATIVE", "1")
    assert native.kernel("at_least", torch.zeros(2, 8)) is not None
    # Nothing to read exactly in a float read of float64, and no kernel for a tensor that needs grad.
    assert native.kernel("at_least", torch.zeros(2, 8, dtype=torch.float64)) is None
    assert native.kernel("at_least", torch.zeros(2, 8, requires_grad=True)) is None


@st.composite
def rows_and_thresholds(draw: st.DrawFn) -> tuple[torch.Tensor, torch.Tensor, float | None]:
    batch = draw(st.integers(1, 6))
    vocab = draw(st.sampled_from([1, 7, 8, 9, 100, 4099, 20000, 151936]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    x = torch.randn(batch, vocab, generator=gen) * draw(st.sampled_from([0.5, 3.5, 8.0]))
    if draw(st.booleans()):
        x = x.round()  # ties, some of them on the threshold
    if vocab > 1 and draw(st.booleans()):
        x[0, : vocab // 2] = NEG_INF
    if draw(st.booleans()):
        x[-1, draw(st.integers(0, vocab - 1))] = float("inf")
    x = x.to(draw(st.sampled_from([torch.float32, torch.bfloat16, torch.float16])))
    divisor = draw(st.sampled_from([None, 0.6, 0.8, 1.7]))
    depth = torch.rand(batch, 1, generator=gen) * draw(st.sampled_from([0.5, 4.0, 12.0]))
    top = (x.float() if divisor is None else (x / divisor).float()).amax(-1, keepdim=True)
    threshold = top - depth
    # Rows with no threshold (the estimate gave up), and rows whose threshold keeps most tokens.
    if draw(st.booleans()):
        threshold[0] = NEG_INF
    if batch > 1 and draw(st.booleans()):
        threshold[1] = top[1] - 1e4
    return x, threshold, divisor


def _views(
    x: torch.Tensor, threshold: torch.Tensor, divisor: float | None, monkeypatch: pytest.MonkeyPatch
) -> tuple[object, object]:
    built = CandidateView.at_least(x, threshold, RowStats(x, divisor=divisor))
    with monkeypatch.context() as off:
        off.setattr(native, "kernel", lambda name, tensor: None)
        reference = CandidateView.at_least(x, threshold, RowStats(x, divisor=divisor))
    return built, reference


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=rows_and_thresholds())
def test_the_threshold_view_kernel_is_the_torch_paths(case, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    x, threshold, divisor = case
    built, reference = _views(x, threshold, divisor, monkeypatch)
    if reference is None:
        assert built is None
        return
    assert built is not None
    (view, covered), (want, want_covered) = built, reference  # type: ignore[misc]
    assert torch.equal(covered, want_covered)
    assert torch.equal(view.values, want.values)
    assert torch.equal(view.token_ids, want.token_ids)
    assert torch.equal(view.check_at, want.check_at)
    assert view.values.dtype == x.dtype and view.stats is not None


def test_a_wrong_kernel_result_would_be_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above can fail: a kernel that drops the sentinel differs from the torch path."""
    x = torch.randn(3, 5000, generator=torch.Generator().manual_seed(1)) * 3
    threshold = x.amax(-1, keepdim=True) - 2.0
    real = native.kernel("at_least", x)
    assert real is not None

    def no_sentinel(*args):  # type: ignore[no-untyped-def]
        values, ids, counts = real(*args)
        return values.scatter(-1, counts.unsqueeze(-1), NEG_INF), ids, counts

    monkeypatch.setattr(native, "kernel", lambda name, tensor: no_sentinel)
    broken = CandidateView.at_least(x, threshold, RowStats(x))
    monkeypatch.setattr(native, "kernel", lambda name, tensor: None)
    reference = CandidateView.at_least(x, threshold, RowStats(x))
    assert broken is not None and reference is not None
    assert not torch.equal(broken[0].values, reference[0].values)


@st.composite
def rows_for_top(draw: st.DrawFn) -> tuple[torch.Tensor, int, bool]:
    batch = draw(st.integers(1, 5))
    vocab = draw(st.sampled_from([4096, 4099, 20000, 151936]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31)))
    x = torch.randn(batch, vocab, generator=gen) * draw(st.sampled_from([1.0, 4.0]))
    m = draw(st.sampled_from([1, 2, 17, 51]))
    return x.to(draw(st.sampled_from([torch.float32, torch.bfloat16]))), m, draw(st.booleans())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=rows_for_top())
def test_the_top_view_kernel_is_the_torch_paths(case, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The same m best values and the same sure prefix, with and without an edit (a penalty's
    new scores, some raised, some lowered, some in the short tail). Ids may differ only where a
    tie at the edge lets either side pick (behind the sure prefix)."""
    x, m, edited = case
    batch, vocab = x.shape
    edit = None
    if edited:
        gen = torch.Generator().manual_seed(vocab + m)
        ids = torch.randint(0, vocab, (batch, 40), generator=gen)
        ids[:, 0] = vocab - 1  # the short tail, where there is one
        picked = x.gather(1, ids)
        edit = fastpath.SparseEdit(ids, torch.where(picked < 0, picked * 1.3, picked / 1.3) + 2.0 * (ids % 3 == 0))

    def view() -> CandidateView:
        return CandidateView.top(x, m, RowStats(x, edit))

    built = view()
    with monkeypatch.context() as off:
        off.setattr(native, "kernel", lambda name, tensor: None)
        want = view()
    assert torch.equal(built.values, want.values)
    assert torch.equal(built.check_at, want.check_at)
    for row in range(batch):
        sure = int(want.check_at[row])
        assert torch.equal(built.token_ids[row, :sure], want.token_ids[row, :sure])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    width=st.sampled_from([1, 2, 7, 102, 700]),
    dtype=st.sampled_from([torch.float32, torch.bfloat16, torch.float16]),
    seed=st.integers(0, 2**31),
    rounded=st.booleans(),
    divisor=st.sampled_from([None, 0.8, 1.7]),
)
def test_the_canonical_order_kernel_is_the_torch_paths(width, dtype, seed, rounded, divisor, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Score-sorted rows, rescaled so that neighbours merge into ties (bf16 and fp16 often do), with
    -inf tails and a NaN: the same order of scores and ids as the torch path's two stable sorts."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.randn(3, width, generator=gen) * 3
    if rounded:
        values = values.round()
    values[0, width // 2 :] = NEG_INF
    if width > 2:
        values[1, 1] = float("nan")
    values = values.sort(dim=-1, descending=True).values.to(dtype)
    if divisor is not None:
        values = values / divisor
    ids = torch.stack([torch.randperm(50000, generator=gen)[:width] for _ in range(3)])
    got = fastpath.canonical_order(values, ids)
    with monkeypatch.context() as off:
        off.setattr(native, "kernel", lambda name, tensor: None)
        want = fastpath.canonical_order(values, ids)
    assert torch.equal(got[0].nan_to_num(nan=7.0), want[0].nan_to_num(nan=7.0))
    assert torch.equal(got[1], want[1])
