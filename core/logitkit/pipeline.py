"""The pipeline: processors in run order, then a selector."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Sequence
from typing import Any

import torch

from logitkit import fastpath
from logitkit.config import ResolvedConfig, resolve
from logitkit.contract_checks import (
    ProcessorContractError,
    apply_checked,
    call_named,
    check_tokens,
    find_in_place_writer,
)
from logitkit.processor import Processor, Selector, StepContext, TokenSettings
from logitkit.registry import Registry
from logitkit.registry import registry as default_registry
from logitkit.settings import GenerationSettings
from logitkit.stages import Stage, stage_label

log = logging.getLogger("logitkit.pipeline")

NEG_INF = float("-inf")

#: What happens when the processors remove every token of a row.
EMPTY_ROW_POLICIES = ("top", "error")

#: Context keys that are StepContext fields; any other context key goes to ``ctx.extra``.
_STEP_FIELDS = frozenset(f.name for f in dataclasses.fields(StepContext))


class EmptyRowError(RuntimeError):
    """Every token of a row was removed and the pipeline's policy is ``error``."""


def _alive(scores: torch.Tensor) -> torch.Tensor:
    """Bool per row: some score is above -inf (NaN compares false, so NaN alone is not alive)."""
    return (scores > NEG_INF).any(dim=-1)


def check_mode_from_env() -> bool:
    return os.environ.get("LOGITKIT_CHECK", "").strip().lower() in {"1", "true", "yes"}


class Pipeline:
    """Processors in run order and the selector that ends the chain.

    ``pipe(input_ids, scores)`` runs every logits stage (transformers'
    signature); ``pipe.next_tokens(input_ids, scores)`` also selects.
    """

    def __init__(
        self,
        processors: Sequence[Processor],
        selector: Selector | None = None,
        *,
        tokens: TokenSettings | None = None,
        generation: GenerationSettings | None = None,
        order: str = "listed",
        source: str = "<code>",
        check: bool | None = None,
        on_empty_row: str = "top",
        **context: Any,
    ) -> None:
        if on_empty_row not in EMPTY_ROW_POLICIES:
            raise ValueError(f"on_empty_row must be one of {EMPTY_ROW_POLICIES}, not {on_empty_row!r}")
        self.processors = list(processors)
        self.selector = selector
        self.tokens = tokens or TokenSettings()
        self.generation = generation or GenerationSettings()
        self.order = order
        self.source = source
        self.check = check_mode_from_env() if check is None else check
        self.on_empty_row = on_empty_row
        self.context = dict(context)
        self._prompt_length: int | None = context.get("prompt_length")
        self._last_length = -1
        #: Run truncation runs on one sorted candidate view (logitkit.fastpath); False forces the dense path.
        self.fast_path = True

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        obj: Any,
        *,
        registry: Registry | None = None,
        allow_import: bool | None = None,
        check: bool | None = None,
        on_empty_row: str = "top",
        **context: Any,
    ) -> Pipeline:
        """Build a pipeline from a dict, a list, a path to .yaml/.yml/.json/.toml, or a resolved config.

        Raises ``logitkit.ConfigError`` listing every problem when the config is invalid.
        ``context`` (prompt_length, tokenizer, model, encoder_input_ids, ...) reaches every step.
        """
        reg = registry if registry is not None else default_registry()
        resolved = resolve(obj, registry=reg, allow_import=allow_import)
        return cls.from_resolved(resolved, registry=reg, check=check, on_empty_row=on_empty_row, **context)

    @classmethod
    def from_generation_config(cls, gc_or_path_or_dict: Any, **context: Any) -> Pipeline:
        """The processors transformers' ``_get_logits_processor`` builds for a ``GenerationConfig``, in its order.

        Accepts a ``GenerationConfig``, a dict, or a path to generation_config.json.
        ``context``: ``input_ids_seq_length`` (the prompt length), ``encoder_input_ids``,
        ``attention_mask``, ``model`` (for guidance), ``prefix_allowed_tokens_fn``,
        ``registry`` and any other pipeline context.
        """
        from logitkit.integrations.generation_config import build_pipeline

        return build_pipeline(cls, gc_or_path_or_dict, **context)

    @classmethod
    def from_openai(
        cls, params: Any, *, registry: Registry | None = None, strict: bool = False, **context: Any
    ) -> Pipeline:
        """A pipeline from OpenAI chat-completions sampling parameters (temperature, top_p, penalties, ...).

        Parameters that cannot be carried over are logged as warnings, or with
        ``strict`` raised as a ``ConfigError``; see ``logitkit.formats``.
        """
        from logitkit.formats import from_openai

        return cls._from_conversion(from_openai(params), "<openai>", registry, strict, context)

    @classmethod
    def from_llama_cpp(
        cls,
        samplers: Any = None,
        *,
        registry: Registry | None = None,
        strict: bool = False,
        context: dict[str, Any] | None = None,
        **params: Any,
    ) -> Pipeline:
        """A pipeline from llama.cpp's sampler chain (``"penalties;dry;top_k"`` or ``"edkypmxt"``) and parameters.

        ``params`` use llama-server's names (``temperature=0.7, top_k=40``); samplers
        without parameters take llama.cpp's defaults. ``context`` is the pipeline context.
        """
        from logitkit.formats import from_llama_cpp

        return cls._from_conversion(from_llama_cpp(samplers, **params), "<llama.cpp>", registry, strict, context or {})

    @classmethod
    def _from_conversion(
        cls, conv: Any, source: str, registry: Registry | None, strict: bool, context: dict[str, Any]
    ) -> Pipeline:
        from logitkit.errors import ConfigError, Problem

        if strict and conv.lost:
            raise ConfigError([Problem(source, loss.parameter, loss.reason) for loss in conv.lost])
        for line in conv.report():
            log.warning("%s: %s", source, line)
        reg = registry if registry is not None else default_registry()
        resolved = resolve(conv.value, registry=reg, source=source)
        return cls.from_resolved(resolved, registry=reg, **context)

    @classmethod
    def from_resolved(
        cls,
        resolved: ResolvedConfig,
        *,
        registry: Registry | None = None,
        check: bool | None = None,
        on_empty_row: str = "top",
        **context: Any,
    ) -> Pipeline:
        reg = registry if registry is not None else default_registry()
        processors = [
            call_named("processor", spec.cls, _plugin_of(reg.processors, spec.name), spec.cls, spec.config, resolved.tokens)
            for spec in resolved.processors
        ]
        selector: Selector | None
        if resolved.selector is not None:
            spec = resolved.selector
            selector = call_named("selector", spec.cls, _plugin_of(reg.selectors, spec.name), spec.cls, spec.config, resolved.tokens)
        else:
            selector = default_selector(processors, reg, resolved.tokens)
        return cls(
            processors,
            selector,
            tokens=resolved.tokens,
            generation=resolved.generation,
            order=resolved.order,
            source=resolved.source,
            check=check,
            on_empty_row=on_empty_row,
            **context,
        )

    # -- running -----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget per-generation state (prompt length, stateful processors)."""
        self._prompt_length = self.context.get("prompt_length")
        self._last_length = -1
        for processor in self.processors:
            processor.reset()
        if self.selector is not None:
            self.selector.reset()

    def step_context(self, input_ids: torch.Tensor, **overrides: Any) -> StepContext:
        """The context for one step; the prompt length is the first length seen after ``reset``."""
        length = int(input_ids.shape[-1])
        if self._prompt_length is None or length < self._last_length:
            # A shorter sequence than last time means a new generation began.
            self._prompt_length = self.context.get("prompt_length", length)
        self._last_length = length
        values: dict[str, Any] = {
            "input_ids": input_ids,
            "prompt_length": self._prompt_length,
            "step": length - int(self._prompt_length or 0),
            "tokens": self.tokens,
        }
        for key in ("attention_mask", "encoder_input_ids", "tokenizer", "model", "seeds"):
            if key in self.context:
                values[key] = self.context[key]
        values["extra"] = self.extra_context()
        values.update(overrides)
        return StepContext(**values)

    def extra_context(self) -> dict[str, Any]:
        """Context keys that are not StepContext fields (e.g. guidance's unconditional_ids), for ``ctx.extra``."""
        return {k: v for k, v in self.context.items() if k not in _STEP_FIELDS}

    def process(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Run every logits stage on ``scores``; never modifies ``scores``."""
        if scores.shape[0] == 0:
            return scores  # an empty batch has nothing to process (reductions over 0 rows raise)
        if self.check:
            return self._process_checked(scores, ctx)
        if self.fast_path:
            dense, view = fastpath.run_chain(self.processors, scores, ctx)
            return dense if view is None else view.densify(dense)
        for processor in self.processors:
            scores = apply_checked(processor, scores, ctx)
        return scores

    def _process_checked(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        ids_before = ctx.input_ids.clone()
        for processor in self.processors:
            before = scores.clone()
            try:
                out = processor.apply(scores, ctx)
            except (ProcessorContractError, EmptyRowError):
                raise
            except Exception as exc:  # name the processor; the original stays chained as the cause
                raise ProcessorContractError(f"processor {processor.name!r} raised {type(exc).__name__}: {exc}") from exc
            _check_output(processor, before, scores, out, ids_before, ctx.input_ids)
            scores = out
        return scores

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        return self.process(scores, self.step_context(input_ids))

    def select(self, processed: torch.Tensor, ctx: StepContext, raw: torch.Tensor | None = None) -> torch.Tensor:
        """Pick one token per row, applying the empty-row policy first."""
        if self.selector is None:
            raise RuntimeError("this pipeline has no selector")
        if processed.shape[0] == 0:
            return torch.empty(0, dtype=torch.long, device=processed.device)
        processed = self.guard_empty_rows(processed, ctx, raw)
        tokens = check_tokens(self.selector, self.selector.select(processed, ctx), *processed.shape)
        if self.check:
            _check_selection(self.selector, processed, tokens)
        return tokens

    def guard_empty_rows(
        self, processed: torch.Tensor, ctx: StepContext, raw: torch.Tensor | None
    ) -> torch.Tensor:
        """Make every row safe to select from, or raise; never a silent token 0.

        NaN scores never win (they count as removed). A row holding +inf scores
        picks among its +inf tokens only, equally likely, so no selector sees an
        inf/NaN probability. A row with nothing left takes the ``on_empty_row``
        policy: ``"top"`` keeps the model's own top token (from ``raw``, NaN
        ignored), ``"error"`` raises ``EmptyRowError`` naming the processor that
        emptied it. A row whose raw logits hold no usable value has no top token
        to keep: that raises ``EmptyRowError`` under either policy.
        """
        nan = torch.isnan(processed)
        posinf = torch.isposinf(processed)
        alive = _alive(processed)
        # One host sync on the common path: rows that need no repair skip everything below.
        if not bool((nan.any(dim=-1) | posinf.any(dim=-1) | ~alive).any()):
            return processed
        cleaned = processed.masked_fill(nan, NEG_INF)
        has_posinf = posinf.any(dim=-1, keepdim=True)
        only_posinf = torch.zeros_like(cleaned).masked_fill(~posinf, NEG_INF)
        cleaned = torch.where(has_posinf, only_posinf, cleaned)
        alive = _alive(cleaned)
        if bool(alive.all()):
            return cleaned
        empty = (~alive).nonzero().flatten().tolist()
        if self.on_empty_row == "error" or raw is None:
            culprit = self.emptied_by(raw, ctx, empty) if raw is not None else "the pipeline"
            raise EmptyRowError(f"rows {empty} have no token left after {culprit}")
        clean_raw = raw.nan_to_num(nan=NEG_INF, posinf=float(torch.finfo(raw.dtype).max), neginf=NEG_INF)
        hopeless = [row for row in empty if not bool(_alive(clean_raw[row]))]
        if hopeless:
            writer = find_in_place_writer(self.processors, tuple(raw.shape), raw.dtype, ctx)
            if writer is not None:  # the raw logits were wiped by a processor, not by the model
                raise ProcessorContractError(f"processor {writer!r} modified its input scores in place")
            raise EmptyRowError(f"rows {hopeless} have no finite logits from the model: no top token to fall back on")
        log.debug("rows %s have no token left; keeping the model's top token", empty)
        fallback = torch.full_like(cleaned, NEG_INF)
        fallback.scatter_(-1, clean_raw.argmax(dim=-1, keepdim=True), 0.0)
        return torch.where(alive.unsqueeze(-1), cleaned, fallback)

    def emptied_by(self, raw: torch.Tensor, ctx: StepContext, rows: list[int]) -> str:
        """The first processor after which any of ``rows`` had no score left (a diagnostic replay)."""
        scores = raw
        if not bool(_alive(scores[rows]).all()):
            return "the model (no finite logits)"
        for processor in self.processors:
            scores = processor.apply(scores, ctx)
            if not bool(_alive(scores[rows]).all()):
                return f"processor {processor.name!r} (stage {stage_label(processor.stage)})"
        return "the pipeline"

    def next_tokens(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Run the logits stages, then the selector: one token id per row."""
        ctx = self.step_context(input_ids)
        if self.fast_path and not self.check and scores.shape[0] > 0:
            # Sample straight from the candidate view when the chain ends with a fused run.
            processed, view = fastpath.run_chain(self.processors, scores, ctx)
            tokens = fastpath.select_from_view(self.selector, view, ctx) if view is not None else None
            if tokens is not None:
                self.accept(tokens)
                return tokens
            if view is not None:
                processed = view.densify(processed)
        else:
            processed = self.process(scores, ctx)
        tokens = self.select(processed, ctx, raw=scores)
        self.accept(tokens)
        return tokens

    def accept(self, tokens: torch.Tensor) -> None:
        for processor in self.processors:
            call_named("processor", processor, None, processor.accept, tokens)
        if self.selector is not None:
            call_named("selector", self.selector, None, self.selector.accept, tokens)

    # -- integration and description -------------------------------------------------

    def as_hf(self, include_selector: bool = True) -> Any:
        """A transformers ``LogitsProcessorList`` running this pipeline inside ``model.generate``.

        By default the pipeline's selector also runs, so transformers can only
        emit logitkit's choice whatever its own ``do_sample`` and warpers say.
        Pass ``include_selector=False`` for beam search, or to let transformers
        select from the processed scores (see docs/generation.md).
        """
        from logitkit.integrations.transformers import as_logits_processor_list

        return as_logits_processor_list(self, include_selector=include_selector)

    def describe(self) -> list[dict[str, Any]]:
        """One row per chain element, in run order."""
        rows = [
            {
                "name": p.name,
                "stage": stage_label(int(p.stage)),
                "priority": p.priority,
                "config": p.config.model_dump(exclude_defaults=False),
            }
            for p in self.processors
        ]
        if self.selector is not None:
            rows.append(
                {
                    "name": self.selector.name,
                    "stage": stage_label(int(Stage.SELECTION)),
                    "priority": 0,
                    "config": self.selector.config.model_dump(),
                }
            )
        return rows

    def __repr__(self) -> str:
        chain = " -> ".join([p.name for p in self.processors] + ([self.selector.name] if self.selector else []))
        return f"Pipeline({chain})"


def _plugin_of(entries: dict[str, Any], name: str) -> str | None:
    entry = entries.get(name)
    return str(entry.plugin) if entry is not None else None


def default_selector(processors: Sequence[Processor], reg: Registry, tokens: TokenSettings) -> Selector | None:
    """``sample`` when the chain shapes a distribution (temperature or truncation), else ``greedy``."""
    samples = any(int(Stage.TEMPERATURE) <= int(p.stage) < int(Stage.WATERMARK) for p in processors)
    name = "sample" if samples else "greedy"
    entry = reg.selectors.get(name)
    if entry is None:
        return None
    selector: Selector = entry.cls(None, tokens)
    return selector


def _check_output(
    processor: Processor,
    before: torch.Tensor,
    scores: torch.Tensor,
    out: Any,
    ids_before: torch.Tensor,
    ids_after: torch.Tensor,
) -> None:
    name = f"processor {processor.name!r}"
    if not isinstance(out, torch.Tensor):
        raise ProcessorContractError(f"{name} returned {type(out).__name__}, not a tensor")
    if out.shape != before.shape:
        raise ProcessorContractError(f"{name} returned shape {tuple(out.shape)}, expected {tuple(before.shape)}")
    if out.dtype != before.dtype:
        raise ProcessorContractError(f"{name} returned dtype {out.dtype}, expected {before.dtype}")
    if not torch.equal(torch.nan_to_num(scores), torch.nan_to_num(before)) or not torch.equal(
        torch.isnan(scores), torch.isnan(before)
    ):
        raise ProcessorContractError(f"{name} modified its input scores in place")
    if not torch.equal(ids_before, ids_after):
        raise ProcessorContractError(f"{name} modified input_ids in place")
    if bool(torch.isnan(out).any()) and not bool(torch.isnan(before).any()):
        raise ProcessorContractError(f"{name} produced NaN scores")


def _check_selection(selector: Selector, processed: torch.Tensor, tokens: Any) -> None:
    name = f"selector {selector.name!r}"
    rows, vocab = processed.shape
    if not isinstance(tokens, torch.Tensor) or tokens.shape != (rows,) or tokens.dtype != torch.long:
        raise ProcessorContractError(f"{name} must return a LongTensor of shape ({rows},), got {tokens!r}")
    if bool(((tokens < 0) | (tokens >= vocab)).any()):
        raise ProcessorContractError(f"{name} chose ids outside the vocabulary: {tokens.tolist()}")
    picked = processed.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    if bool((picked == NEG_INF).any()):
        raise ProcessorContractError(f"{name} chose a removed token (score -inf) in rows {(picked == NEG_INF).nonzero().flatten().tolist()}")
