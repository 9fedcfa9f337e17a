"""The processor and selector contracts, checked on many generated inputs.

A processor must:

1. never modify ``scores`` or ``ctx.input_ids``;
2. return a tensor of the same shape and dtype;
3. never produce NaN from NaN-free input;
4. treat rows independently: row ``r`` of a batch gives what row ``r`` alone gives;
5. keep at least ``min_tokens_to_keep`` finite tokens (when its config has that field),
   and at least one when it runs at the temperature or truncation stage;
6. keep the top token on top when it declares ``argmax_invariant``.

A selector must return one in-vocabulary token per row, pick a token with a
finite score, not modify its inputs, and treat rows independently.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
from hypothesis import HealthCheck, Phase, given, settings
from pydantic import BaseModel, ValidationError

from logitkit.processor import Processor, Selector, StepContext, TokenSettings
from logitkit.stages import Stage
from logitkit.testing.strategies import DTYPES, StepCase, step_cases

#: Default number of generated cases per contract check.
DEFAULT_EXAMPLES = 40


class ContractViolation(AssertionError):
    """A processor or selector broke its contract; the message names it and the rule."""


Factory = Callable[[], Any]

_STEP_FIELDS = frozenset(f.name for f in dataclasses.fields(StepContext))


def factory_for(
    target: type | Processor | Selector,
    config: Mapping[str, Any] | BaseModel | None,
    tokens: TokenSettings | None,
) -> Factory:
    """A function returning a fresh processor (or selector) for every call, so state never leaks between checks."""
    if not isinstance(target, type):
        return lambda: copy.deepcopy(target)
    cls: Any = target
    if isinstance(config, BaseModel):
        model = config
    else:
        try:
            model = cls.Config.model_validate(dict(config or {}))
        except ValidationError as exc:
            raise ContractViolation(_config_problem(cls, config, exc)) from None
    settings_ = tokens or TokenSettings()
    return lambda: cls(model, settings_)


def _config_problem(cls: Any, config: Mapping[str, Any] | None, exc: ValidationError) -> str:
    """One line for an example config that does not validate, naming the fields."""
    name = getattr(cls, "name", cls.__name__)
    missing = [str(e["loc"][0]) for e in exc.errors() if e["type"] == "missing" and e["loc"]]
    if missing and not config:
        return (
            f"{name}: its Config has required fields ({', '.join(missing)}) and no example config was given; "
            f"pass one, e.g. contract_tests(..., configs={{{name!r}: {{{missing[0]!r}: ...}}}})"
        )
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
    return f"{name}: the example config {dict(config or {})!r} is invalid: {problems}"


def context_for(
    case: StepCase, rows: slice | None = None, context: Mapping[str, Any] | None = None
) -> StepContext:
    """The step context for ``case`` (or some of its rows).

    ``context`` adds what a processor needs beyond the case (``model``, ``tokenizer``,
    ``tokens``, ...): StepContext fields by name, any other key into ``ctx.extra``.
    Its values are shared by every row, so they must not be per-row tensors.
    """
    rows = rows or slice(None)
    ids = case.input_ids[rows]
    fields = dict(context or {})
    extra = {k: fields.pop(k) for k in list(fields) if k not in _STEP_FIELDS}
    rows_count = int(ids.shape[0])
    return StepContext(
        input_ids=ids,
        prompt_lengths=torch.full((rows_count,), case.prompt_length, dtype=torch.int64),
        steps=torch.full((rows_count,), int(ids.shape[-1]) - case.prompt_length, dtype=torch.int64),
        seeds=case.seeds[rows],
        **fields,
        extra=extra,
    )


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bitwise-equal, treating NaN as equal to NaN."""
    return bool(torch.equal(torch.isnan(a), torch.isnan(b))) and bool(
        torch.equal(torch.nan_to_num(a, nan=0.0), torch.nan_to_num(b, nan=0.0))
    )


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal -inf/+inf/NaN masks and finite values equal within the dtype's tolerance."""
    if not (
        torch.equal(torch.isneginf(a), torch.isneginf(b))
        and torch.equal(torch.isposinf(a), torch.isposinf(b))
    ):
        return False
    if not torch.equal(torch.isnan(a), torch.isnan(b)):
        return False
    finite = torch.isfinite(a)
    tol = 1e-5 if a.dtype in (torch.float32, torch.float64) else 1e-2
    return bool(torch.allclose(a[finite].double(), b[finite].double(), rtol=tol, atol=tol))


def _fail(name: str, rule: str, case: StepCase) -> ContractViolation:
    shape = tuple(case.scores.shape)
    return ContractViolation(
        f"{name}: {rule} (scores {shape} {case.scores.dtype}, history length {case.input_ids.shape[-1]}, "
        f"prompt_length {case.prompt_length})"
    )


def check_processor_case(
    make: Factory, case: StepCase, context: Mapping[str, Any] | None = None
) -> torch.Tensor:
    """Check every processor rule on one case; returns the processor's output."""
    processor = make()
    name = f"processor {getattr(processor, 'name', type(processor).__name__)!r}"
    scores, ids = case.scores.clone(), case.input_ids.clone()
    ctx = context_for(case, context=context)
    out = processor.apply(scores, ctx)
    if not _same(scores, case.scores):
        raise _fail(name, "modified its input scores", case)
    if not torch.equal(ctx.input_ids, ids):
        raise _fail(name, "modified ctx.input_ids", case)
    if not isinstance(out, torch.Tensor):
        raise _fail(name, f"returned {type(out).__name__}, not a tensor", case)
    if out.shape != scores.shape or out.dtype != scores.dtype:
        raise _fail(
            name,
            f"returned {tuple(out.shape)} {out.dtype}, expected {tuple(scores.shape)} {scores.dtype}",
            case,
        )
    if not bool(torch.isnan(scores).any()) and bool(torch.isnan(out).any()):
        raise _fail(name, "produced NaN from NaN-free scores", case)
    _check_rows(make, case, out, name, context)
    _check_kept(processor, scores, out, name, case)
    if getattr(processor, "argmax_invariant", False):
        _check_argmax(scores, out, name, case)
    return out


def _check_rows(
    make: Factory,
    case: StepCase,
    out: torch.Tensor,
    name: str,
    context: Mapping[str, Any] | None = None,
) -> None:
    if case.batch_size == 1:
        return
    for row in range(case.batch_size):
        alone = make().apply(
            case.scores[row : row + 1].clone(), context_for(case, slice(row, row + 1), context)
        )
        if not _close(alone[0], out[row]):
            raise _fail(name, f"row {row} differs when run alone: rows are not independent", case)


def _check_kept(
    processor: Any, scores: torch.Tensor, out: torch.Tensor, name: str, case: StepCase
) -> None:
    finite_in = torch.isfinite(scores).sum(dim=-1)
    finite_out = torch.isfinite(out).sum(dim=-1)
    config = getattr(processor, "config", None)
    keep = getattr(config, "min_tokens_to_keep", None)
    stage = int(getattr(processor, "stage", 0))
    if keep is None and Stage.TEMPERATURE <= stage < Stage.WATERMARK:
        keep = 1
    if keep is None:
        return
    need = torch.clamp(finite_in, max=int(keep))
    short = (finite_out < need).nonzero().flatten().tolist()
    if short:
        raise _fail(
            name, f"kept fewer than min_tokens_to_keep={keep} finite tokens in rows {short}", case
        )


def _check_argmax(scores: torch.Tensor, out: torch.Tensor, name: str, case: StepCase) -> None:
    """Some token tied for the top input score must still hold the top output score.

    Ties at the top, and low-precision rounding that makes two outputs equal, are allowed.
    """
    clean_in = scores.float().nan_to_num(nan=float("-inf"))
    clean_out = out.float().nan_to_num(nan=float("-inf"))
    has_finite = torch.isfinite(clean_in).any(dim=-1)
    top_in = clean_in == clean_in.amax(dim=-1, keepdim=True)
    top_out = clean_out == clean_out.amax(dim=-1, keepdim=True)
    lost = (has_finite & ~(top_in & top_out).any(dim=-1)).nonzero().flatten().tolist()
    if lost:
        raise _fail(name, f"declares argmax_invariant but moved the top token in rows {lost}", case)


def _selector_run(
    selector: Any, case: StepCase, rows: slice, context: Mapping[str, Any] | None
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """``(scores, chosen, state)``: one step of ``selector`` on ``case``'s rows, driven by a batch state.

    The state starts from the prompt and replays the case's generated tokens,
    so a stateful selector sees what a host would have fed it.
    """
    from logitkit.pipeline import Pipeline

    fields = dict(context or {})
    extra = {k: fields.pop(k) for k in list(fields) if k not in _STEP_FIELDS}
    ids = case.input_ids[rows]
    length = int(ids.shape[-1])
    state = Pipeline([], selector).start(
        ids, prompt_length=length, steps=length - case.prompt_length, seeds=case.seeds[rows]
    )
    scores = case.scores[rows].clone()
    chosen = selector.select(scores, state.context(ids, **fields, extra=extra))
    return scores, chosen, state


def check_selector_case(
    make: Factory, case: StepCase, context: Mapping[str, Any] | None = None
) -> torch.Tensor:
    """Check the selector rules on one case; returns the chosen token ids."""
    selector = make()
    name = f"selector {getattr(selector, 'name', type(selector).__name__)!r}"
    ids = case.input_ids.clone()
    scores, chosen, state = _selector_run(selector, case, slice(None), context)
    if not _same(scores, case.scores) or not torch.equal(case.input_ids, ids):
        raise _fail(name, "modified its inputs", case)
    if (
        not isinstance(chosen, torch.Tensor)
        or chosen.shape != (case.batch_size,)
        or chosen.dtype != torch.long
    ):
        raise _fail(
            name, f"must return a LongTensor of shape ({case.batch_size},), got {chosen!r}", case
        )
    if bool(((chosen < 0) | (chosen >= case.vocab_size)).any()):
        raise _fail(name, f"chose an id outside the vocabulary: {chosen.tolist()}", case)
    picked = scores.gather(-1, chosen.view(-1, 1)).squeeze(-1)
    if not bool(torch.isfinite(picked).all()):
        raise _fail(name, f"chose a token with a non-finite score: {picked.tolist()}", case)
    state.accept(chosen)
    for row in range(case.batch_size if case.batch_size > 1 else 0):
        _, alone, _ = _selector_run(make(), case, slice(row, row + 1), context)
        if int(alone[0]) != int(chosen[row]):
            raise _fail(
                name, f"row {row} chose differently when run alone: rows are not independent", case
            )
    return chosen


def _run(
    check: Callable[[Factory, StepCase], Any],
    make: Factory,
    *,
    examples: int,
    dtypes: tuple[torch.dtype, ...],
    vocab: tuple[int, int],
    batch: tuple[int, int],
    length: tuple[int, int],
    shrink: bool = True,
    derandomize: bool = True,
) -> None:
    phases = tuple(Phase) if shrink else (Phase.explicit, Phase.reuse, Phase.generate)

    @settings(
        max_examples=examples,
        phases=phases,
        derandomize=derandomize,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )
    @given(case=step_cases(batch=batch, vocab=vocab, dtypes=dtypes, length=length))
    def run(case: StepCase) -> None:
        try:
            check(make, case)
        except IndexError as exc:
            # The usual cause: a processor bound to a tokenizer or fixed ids, run on a small vocabulary.
            size = case.scores.shape[-1]
            raise ContractViolation(
                f"IndexError at vocabulary size {size}: {exc}; a processor bound to a tokenizer or to "
                f"token ids needs a vocabulary that holds them: pass vocab=(n, n)"
            ) from exc

    run()


def check_processor_contract(
    target: type[Processor] | Processor,
    config: Mapping[str, Any] | BaseModel | None = None,
    *,
    tokens: TokenSettings | None = None,
    examples: int = DEFAULT_EXAMPLES,
    dtypes: tuple[torch.dtype, ...] = DTYPES,
    vocab: tuple[int, int] = (2, 48),
    batch: tuple[int, int] = (1, 4),
    length: tuple[int, int] = (1, 16),
    shrink: bool = True,
    context: Mapping[str, Any] | None = None,
    derandomize: bool = True,
) -> None:
    """Check a processor class (built from ``config``) or instance against the contract on generated inputs.

    Raises ``ContractViolation`` naming the processor, the rule and the input's shape;
    hypothesis shrinks the failing input first. Per-row seeds are always given, so
    random processors must key their randomness on ``ctx.seeds`` to pass the row rule.
    ``shrink=False`` skips hypothesis' shrinking (faster, a less minimal failing input).
    ``derandomize=True`` (the default) draws the same inputs on every run, so CI is
    stable; pass ``False`` to explore new inputs on each run.
    ``context`` gives what the processor reads besides the case (e.g. ``{"model": fake}``);
    see ``context_for``.
    """
    _run(partial(check_processor_case, context=context), factory_for(target, config, tokens), examples=examples, dtypes=dtypes,
         vocab=vocab, batch=batch, length=length, shrink=shrink, derandomize=derandomize)  # fmt: skip


def check_selector_contract(
    target: type[Selector] | Selector,
    config: Mapping[str, Any] | BaseModel | None = None,
    *,
    tokens: TokenSettings | None = None,
    examples: int = DEFAULT_EXAMPLES,
    dtypes: tuple[torch.dtype, ...] = DTYPES,
    vocab: tuple[int, int] = (2, 48),
    batch: tuple[int, int] = (1, 4),
    length: tuple[int, int] = (1, 16),
    shrink: bool = True,
    context: Mapping[str, Any] | None = None,
    derandomize: bool = True,
) -> None:
    """Check a selector class or instance against the selector contract on generated inputs."""
    _run(partial(check_selector_case, context=context), factory_for(target, config, tokens), examples=examples, dtypes=dtypes,
         vocab=vocab, batch=batch, length=length, shrink=shrink, derandomize=derandomize)  # fmt: skip
