"""The always-on contract checks: cheap enough to run at every step, with check mode off.

Check mode (``Pipeline(check=True)``) adds the expensive ones (copies to catch in-place
writes, NaN scans). These only compare shapes, dtypes and id ranges, and name the
processor, selector, criterion or search strategy that broke the contract.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch

log = logging.getLogger("logitkit.pipeline")


class ProcessorContractError(RuntimeError):
    """A processor, selector or other plugin object broke its contract."""


def apply_checked(processor: Any, scores: torch.Tensor, ctx: Any) -> torch.Tensor:
    """``processor.apply(scores, ctx)``, refusing an output of another type, shape or dtype."""
    out = processor.apply(scores, ctx)
    check_output_form(processor, scores, out)
    return out  # type: ignore[no-any-return]


def check_output_form(processor: Any, scores: torch.Tensor, out: Any) -> None:
    name = f"processor {processor.name!r}"
    if not isinstance(out, torch.Tensor):
        raise ProcessorContractError(f"{name} returned {type(out).__name__}, not a tensor")
    if out.shape != scores.shape:
        raise ProcessorContractError(f"{name} returned shape {tuple(out.shape)}, expected {tuple(scores.shape)}")
    if out.dtype != scores.dtype:
        raise ProcessorContractError(f"{name} returned dtype {out.dtype}, expected {scores.dtype}")


def check_tokens(selector: Any, tokens: Any, rows: int, vocab: int) -> torch.Tensor:
    """A selector's pick must be a LongTensor ``[rows]`` of ids inside the vocabulary."""
    name = f"selector {getattr(selector, 'name', type(selector).__name__)!r}"
    if not isinstance(tokens, torch.Tensor) or tokens.shape != (rows,) or tokens.dtype != torch.long:
        got = f"{type(tokens).__name__} {tuple(tokens.shape)} {tokens.dtype}" if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ProcessorContractError(f"{name} must return a LongTensor of shape ({rows},), got {got}")
    # One host copy and Python's min/max: a row's id is a few bytes, and two reductions plus two
    # syncs cost more than the copy at every batch size a step runs.
    listed = tokens.tolist() if rows else []
    if listed and not (min(listed) >= 0 and max(listed) < vocab):
        raise ProcessorContractError(f"{name} chose ids outside the vocabulary: {listed[:16]}")
    return tokens


def call_named(kind: str, obj: Any, plugin: str | None, method: Callable[..., Any], *args: Any) -> Any:
    """``method(*args)``, re-raising any failure as ``ProcessorContractError`` naming ``obj`` and its plugin."""
    try:
        return method(*args)
    except ProcessorContractError:
        raise
    except Exception as exc:
        raise ProcessorContractError(f"{describe(kind, obj, plugin)} raised in {method.__name__}: {type(exc).__name__}: {exc}") from exc


def describe(kind: str, obj: Any, plugin: str | None) -> str:
    name = getattr(obj, "name", None) or getattr(obj, "__name__", type(obj).__name__)
    return f"{kind} {name!r}" + (f" (plugin {plugin!r})" if plugin else "")


def find_in_place_writer(processors: Any, shape: tuple[int, ...], dtype: torch.dtype, ctx: Any) -> str | None:
    """The first processor that writes into its input scores, found by a replay on a fresh tensor.

    Only run on an error path (raw logits that held values before the chain and none after),
    so the copies cost nothing on the normal path.
    """
    probe = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    for processor in processors:
        before = probe.clone()
        try:
            out = processor.apply(probe, ctx)
        except Exception:
            return None
        if not torch.equal(before.nan_to_num(), probe.nan_to_num()):
            return str(processor.name)
        probe = out if isinstance(out, torch.Tensor) and out.shape == before.shape else before
    return None


def check_search_output(name: str, plugin: str | None, output: Any, rows: int, finish_reasons: tuple[str, ...]) -> Any:
    """A search strategy must return a ``GenerationOutput`` with ``rows`` sequences and known finish reasons."""
    from logitkit.decoding import GenerationOutput

    who = describe("search strategy", type("S", (), {"name": name}), plugin)
    if not isinstance(output, GenerationOutput):
        raise ProcessorContractError(f"{who} returned {type(output).__name__}, not a GenerationOutput")
    sequences = output.sequences
    if not isinstance(sequences, torch.Tensor) or sequences.dim() != 2 or sequences.shape[0] != rows:
        got = tuple(sequences.shape) if isinstance(sequences, torch.Tensor) else type(sequences).__name__
        raise ProcessorContractError(f"{who} returned sequences {got}, expected {rows} rows")
    reasons = list(output.finish_reasons)
    if len(reasons) != rows or any(r not in finish_reasons for r in reasons):
        raise ProcessorContractError(f"{who} returned finish reasons {reasons[:8]}; expected {rows} of {', '.join(finish_reasons)}")
    return output
