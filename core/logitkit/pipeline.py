"""The pipeline: processors in run order, then a selector."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from logitkit import fastpath, rowgroups
from logitkit.config import EMPTY_ROW_POLICIES, ResolvedConfig, resolve
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
from logitkit.state import BatchState

log = logging.getLogger("logitkit.pipeline")

NEG_INF = float("-inf")

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
    """An immutable recipe: processors in run order and the selector that ends the chain.

    ``pipe(input_ids, scores)`` runs every logits stage (transformers'
    signature); ``pipe.next_tokens(input_ids, scores)`` also selects. Both
    treat each call on its own, like transformers' processors: the prompt
    length is the ``prompt_length`` context (else the whole input), and any
    stateful element starts from the prompt and replays the tokens after it.
    A generation keeps its live state in a ``BatchState`` (``pipe.start``);
    one pipeline serves any number of them, from any number of threads.
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
        fast_path: bool = True,
        **context: Any,
    ) -> None:
        if on_empty_row not in EMPTY_ROW_POLICIES:
            raise ValueError(f"on_empty_row must be one of {EMPTY_ROW_POLICIES}, not {on_empty_row!r}")
        self.processors: tuple[Processor, ...] = tuple(processors)
        self.selector = selector
        self.tokens = tokens or TokenSettings()
        self.generation = generation or GenerationSettings()
        self.order = order
        self.source = source
        self.check = check_mode_from_env() if check is None else check
        self.on_empty_row = on_empty_row
        #: Run truncation runs on one sorted candidate view (logitkit.fastpath); False forces the dense path.
        self.fast_path = fast_path
        self.context: Mapping[str, Any] = MappingProxyType(dict(context))
        self._frozen = True

    def __setattr__(self, name: str, value: Any) -> None:
        if getattr(self, "_frozen", False):
            raise AttributeError(
                f"a Pipeline is immutable (it may be shared across threads); "
                f"use pipe.replace({name}=...) for a changed copy"
            )
        object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> Pipeline:
        """A copy with some settings, context keys or the processors changed; elements are shared."""
        processors = changes.pop("processors", self.processors)
        settings: dict[str, Any] = {
            "selector": self.selector,
            "tokens": self.tokens,
            "generation": self.generation,
            "order": self.order,
            "source": self.source,
            "check": self.check,
            "on_empty_row": self.on_empty_row,
            "fast_path": self.fast_path,
        }
        context = dict(self.context)
        for key, value in changes.items():
            (settings if key in settings else context)[key] = value
        return type(self)(processors, **settings, **context)

    @property
    def elements(self) -> tuple[Processor | Selector, ...]:
        """The processors, then the selector: every element that may keep row state."""
        return self.processors + ((self.selector,) if self.selector is not None else ())

    @property
    def stateful(self) -> bool:
        """True when some element keeps row state (``init_rows`` is overridden)."""
        return any(
            type(e).init_rows is not Processor.init_rows and type(e).init_rows is not Selector.init_rows
            for e in self.elements
        )

    @property
    def needs_state_alone(self) -> bool:
        """True when a call on its own needs a batch state: some element keeps row state
        beyond the seeds it derives from the context anyway (``seeds_only_state``)."""
        return any(
            type(e).init_rows is not Processor.init_rows
            and type(e).init_rows is not Selector.init_rows
            and not e.seeds_only_state
            for e in self.elements
        )

    # -- construction ------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        obj: Any,
        *,
        registry: Registry | None = None,
        allow_import: bool | None = None,
        check: bool | None = None,
        on_empty_row: str | None = None,
        **context: Any,
    ) -> Pipeline:
        """Build a pipeline from a dict, a list, a path to .yaml/.yml/.json/.toml, or a resolved config.

        Raises ``logitkit.ConfigError`` listing every problem when the config is invalid.
        ``on_empty_row`` overrides the config's ``on_empty_row:`` (default ``"top"``).
        ``context`` (prompt_length, tokenizer, model, encoder_input_ids, ...) reaches every step.
        """
        reg = registry if registry is not None else default_registry()
        resolved = resolve(obj, registry=reg, allow_import=allow_import)
        return cls.from_resolved(resolved, registry=reg, check=check, on_empty_row=on_empty_row, **context)

    @classmethod
    def from_generation_config(
        cls, gc_or_path_or_dict: Any, *, selector: str = "multinomial", strict: bool = False, **context: Any
    ) -> Pipeline:
        """A transformers ``GenerationConfig`` as a pipeline: processors, selector and ``generation:`` settings.

        Accepts a ``GenerationConfig``, a dict, or a path to generation_config.json.
        The processors are those ``_get_logits_processor`` builds, in its order;
        ``do_sample`` picks the ``multinomial`` selector, which reproduces
        transformers under the same ``torch.manual_seed`` (``selector="sample"``:
        logitkit's batch-invariant sampler instead). Fields that would change the
        tokens and cannot be carried raise a ``ConfigError`` naming them; fields
        with no effect are named in a warning (``strict``: raised too).
        ``context``: ``input_ids_seq_length`` (the prompt length), ``encoder_input_ids``,
        ``attention_mask``, ``model`` (for guidance), ``prefix_allowed_tokens_fn``,
        ``registry`` and any other pipeline context.
        """
        from logitkit.errors import ConfigError, Problem
        from logitkit.formats.hf_processors import (
            load_generation_config,
            prefix_processor,
            prefix_slot,
        )
        from logitkit.formats.hf_translation import translate

        reg = context.pop("registry", None) or default_registry()
        prefix_fn = context.pop("prefix_allowed_tokens_fn", None)
        gc = load_generation_config(gc_or_path_or_dict)
        seq_length = context.pop("input_ids_seq_length", None)
        if seq_length is not None:
            context.setdefault("prompt_length", seq_length)
        if selector not in ("multinomial", "sample"):
            raise ValueError(f"selector must be 'multinomial' or 'sample', not {selector!r}")
        translation = translate(
            gc,
            input_ids_seq_length=seq_length,
            encoder_input_ids=context.get("encoder_input_ids"),
            model=context.get("model"),
            selector="sample" if selector == "sample" else "multinomial",
        )
        source = str(gc_or_path_or_dict) if isinstance(gc_or_path_or_dict, (str, Path)) else "<generation_config>"
        refused = translation.conversion.lost if strict else translation.refused
        if refused:
            raise ConfigError([Problem(source, loss.parameter, loss.reason) for loss in refused])
        for line in translation.conversion.report():
            log.warning("%s: %s", source, line)
        pipe = cls.from_resolved(resolve(translation.config, registry=reg, source=source), registry=reg, **context)
        if prefix_fn is None:
            return pipe
        slot = prefix_slot([p.name for p in pipe.processors])
        prefix = prefix_processor(reg, gc, pipe.tokens, prefix_fn)
        return pipe.replace(processors=(*pipe.processors[:slot], prefix, *pipe.processors[slot:]))

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
        on_empty_row: str | None = None,
        **context: Any,
    ) -> Pipeline:
        reg = registry if registry is not None else default_registry()
        if on_empty_row is None:
            on_empty_row = resolved.on_empty_row or "top"
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
            on_empty_row=on_empty_row or resolved.on_empty_row or "top",  # an argument beats the config
            **context,
        )

    # -- running -----------------------------------------------------------------------

    def new_state(self, device: torch.device | str | None = None) -> BatchState:
        """An empty batch for a host to fill with ``add`` (continuous batching)."""
        return BatchState(self, device)

    def start(
        self,
        input_ids: torch.Tensor,
        *,
        prompt_length: int | torch.Tensor | None = None,
        steps: int | torch.Tensor = 0,
        seeds: torch.Tensor | Sequence[int] | int | None = None,
    ) -> BatchState:
        """The state of a new generation whose rows are ``input_ids`` ([batch, length]).

        ``prompt_length`` defaults to the whole row (padding included);
        ``steps`` > 0 says the last ``steps`` tokens were already generated
        (they are replayed to stateful elements). ``seeds`` defaults to the
        ``seeds`` context.
        """
        state = BatchState(self, input_ids.device)
        given = seeds if seeds is not None else self.context.get("seeds")
        state.add(input_ids, prompt_lengths=prompt_length, steps=steps, seeds=given)
        return state

    def context_fields(self) -> dict[str, Any]:
        """StepContext fields from the pipeline's context (model, tokenizer, ...), ``extra`` included."""
        values: dict[str, Any] = {"tokens": self.tokens, "extra": self.extra_context()}
        for key in ("attention_mask", "encoder_input_ids", "tokenizer", "model"):
            if key in self.context:
                values[key] = self.context[key]
        return values

    def extra_context(self) -> dict[str, Any]:
        """Context keys that are not StepContext fields (e.g. guidance's unconditional_ids), for ``ctx.extra``."""
        return {k: v for k, v in self.context.items() if k not in _STEP_FIELDS}

    def step_context(self, input_ids: torch.Tensor, **overrides: Any) -> StepContext:
        """The context of a call on its own: the prompt length is the ``prompt_length`` context, else the whole input."""
        length = int(input_ids.shape[-1])
        prompt = self.context.get("prompt_length", length)
        values = self.context_fields()
        if "seeds" in self.context:
            values["seeds"] = torch.as_tensor(self.context["seeds"], dtype=torch.int64)
        rows, device = int(input_ids.shape[0]), input_ids.device
        # Both per-row tensors from one host-to-tensor copy: a call on its own pays per dispatch.
        per_row = torch.tensor([[int(prompt)] * rows, [length - int(prompt)] * rows], dtype=torch.int64, device=device)
        values["prompt_lengths"], values["steps"] = per_row[0], per_row[1]
        values.update(overrides)
        ctx = StepContext(input_ids=input_ids, **values)
        if "prompt_lengths" in overrides or "steps" in overrides or int(prompt) > length:
            return ctx
        return ctx.built_uniform(length - int(prompt))

    def _standalone(self, input_ids: torch.Tensor) -> StepContext:
        """A call on its own: stateful elements start from the prompt and replay what follows."""
        if not self.needs_state_alone:
            return self.step_context(input_ids)
        length = int(input_ids.shape[-1])
        prompt = int(self.context.get("prompt_length", length))
        state = self.start(input_ids, prompt_length=length, steps=length - prompt)
        return state.context(input_ids)

    def process(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Run every logits stage on ``scores``; never modifies ``scores``."""
        if scores.shape[0] == 0:
            return scores  # an empty batch has nothing to process (reductions over 0 rows raise)
        processors = rowgroups.for_context(self.processors, ctx)
        if self.check:
            return self._process_checked(processors, scores, ctx)
        if self.fast_path:
            dense, view = fastpath.run_chain(processors, scores, ctx)
            return dense if view is None else view.densify(dense)
        for processor in processors:
            scores = apply_checked(processor, scores, ctx)
        return scores

    def _process_checked(
        self, processors: Sequence[Processor], scores: torch.Tensor, ctx: StepContext
    ) -> torch.Tensor:
        ids_before = ctx.input_ids.clone()
        for processor in processors:
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
        return self.process(scores, self._standalone(input_ids))

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
        for processor in rowgroups.for_context(self.processors, ctx):
            scores = processor.apply(scores, ctx)
            if not bool(_alive(scores[rows]).all()):
                return f"processor {processor.name!r} (stage {stage_label(processor.stage)})"
        return "the pipeline"

    def choose(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """Logits stages then the selector: one token id per row (no ``accept``)."""
        if self.fast_path and not self.check and scores.shape[0] > 0:
            # Sample straight from the candidate view when the chain ends with a fused run.
            processors = rowgroups.for_context(self.processors, ctx)
            processed, view = fastpath.run_chain(processors, scores, ctx)
            tokens = fastpath.select_from_view(self.selector, view, ctx) if view is not None else None
            if tokens is not None:
                return tokens
            if view is not None:
                processed = view.densify(processed)
        else:
            processed = self.process(scores, ctx)
        return self.select(processed, ctx, raw=scores)

    def next_tokens(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Run the logits stages, then the selector: one token id per row, for this call on its own."""
        return self.choose(scores, self._standalone(input_ids))

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
