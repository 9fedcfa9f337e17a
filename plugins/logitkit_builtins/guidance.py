"""Classifier-free guidance: mix the model's conditional scores with an unconditional pass.

Mirrors transformers' ``UnbatchedClassifierFreeGuidanceLogitsProcessor``: a
second forward pass of the model on the unconditional prompt (the negative
prompt, or by default the prompt's last token), kept incremental with its own
KV cache, then ``log_softmax`` of both and
``scale * (cond - uncond) + uncond``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from pydantic import Field

from logitkit import NewRows, Processor, ProcessorConfig, RowState, Stage, StepContext
from logitkit_builtins.numerics import safe_log_softmax

#: ``Pipeline.from_config(cfg, model=m, unconditional_ids=..., unconditional_attention_mask=...)``;
#: transformers' ``generate()`` names them ``negative_prompt_ids`` / ``negative_prompt_attention_mask``.
UNCONDITIONAL_IDS = ("unconditional_ids", "negative_prompt_ids")
UNCONDITIONAL_MASK = ("unconditional_attention_mask", "negative_prompt_attention_mask")


class MissingModelError(RuntimeError):
    """guidance_scale ran without a model in the pipeline's context."""


class GuidanceConfig(ProcessorConfig):
    guidance_scale: float = Field(
        default=1.0,
        ge=0,
        description="1 leaves scores as log-probabilities; above 1 follows the prompt more closely.",
    )
    use_cache: bool = Field(default=True, description="Keep a KV cache for the unconditional pass.")


@dataclass
class _Unconditional:
    """The unconditional branch between steps: its ids, attention mask, cache and length seen."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    cache: Any
    length: int


class Guidance(Processor):
    """Classifier-free guidance against an unconditional (or negative-prompt) forward pass of the model."""

    name = "guidance_scale"
    stage = Stage.GUIDANCE
    Config = GuidanceConfig
    needs = frozenset({"input_ids", "model"})
    # The unconditional branch is one model cache for the whole batch: it cannot follow rows.
    follows_rows = False

    def init_rows(self, rows: NewRows) -> RowState:
        return {"branch": None}

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        config: GuidanceConfig = self.config  # type: ignore[assignment]
        # Safe log-softmax: a +inf score would make plain log_softmax NaN.
        conditional = safe_log_softmax(scores)
        if config.guidance_scale == 1:
            mixed = conditional
        else:
            logits = self._unconditional_logits(ctx)
            unconditional = safe_log_softmax(logits[:, -1])
            mixed = config.guidance_scale * (conditional - unconditional) + unconditional
            # inf - inf (a token both branches rule in or out without bound) has no value: removed.
            mixed = mixed.nan_to_num(nan=float("-inf"))
        # A token the model ruled out (-inf) stays out: scale 0 would give 0 * -inf = NaN, and a
        # row with nothing left would give NaN everywhere.
        return mixed.masked_fill(torch.isneginf(scores), float("-inf")).to(scores.dtype)

    def _unconditional_logits(self, ctx: StepContext) -> torch.Tensor:
        model = ctx.model
        if model is None:
            raise MissingModelError(
                "guidance_scale needs the model for its unconditional pass: "
                "build the pipeline with Pipeline.from_config(config, model=model)"
            )
        config: GuidanceConfig = self.config  # type: ignore[assignment]
        input_ids = ctx.input_ids
        # Without a host's state (a call on its own) the branch starts over, as on a first step.
        held = ctx.row_state(self) or {"branch": None}
        state: _Unconditional | None = held["branch"]
        if state is None or input_ids.shape[-1] != state.length + 1:
            # A new generation (or a skipped step): start the unconditional branch over, as transformers' first pass.
            ids = _first_of(ctx.extra, UNCONDITIONAL_IDS)
            ids = input_ids[:, -1:] if ids is None else ids.to(input_ids.device)
            mask = _first_of(ctx.extra, UNCONDITIONAL_MASK)
            mask = torch.ones_like(ids, dtype=torch.long) if mask is None else mask.to(ids.device)
            state = _Unconditional(ids, mask, None, input_ids.shape[-1])
            feed = ids
        else:
            new_token = input_ids[:, -1:]
            mask = torch.cat(
                [state.attention_mask, torch.ones_like(new_token, dtype=torch.long)], dim=1
            )
            feed = new_token if config.use_cache else torch.cat([state.input_ids, new_token], dim=1)
            state = _Unconditional(feed, mask, state.cache, input_ids.shape[-1])
        with torch.no_grad():
            out = model(feed, attention_mask=state.attention_mask, use_cache=config.use_cache,
                        **{_cache_argument(model): state.cache})  # fmt: skip
        state.cache = _output_field(out, "cache", "past_key_values")
        held["branch"] = state
        logits: torch.Tensor = _output_field(out, "logits")
        return logits


def _first_of(extra: dict[str, Any], names: tuple[str, ...]) -> Any:
    return next((extra[name] for name in names if extra.get(name) is not None), None)


def _cache_argument(model: Any) -> str:
    """transformers 5 names the KV cache ``cache``; 4.x called it ``past_key_values``."""
    forward = getattr(model, "forward", model)
    try:
        parameters = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return "cache"
    return (
        "past_key_values"
        if "past_key_values" in parameters and "cache" not in parameters
        else "cache"
    )


def _output_field(out: Any, *names: str) -> Any:
    for name in names:
        if isinstance(out, dict) and name in out:
            return out[name]
        value = getattr(out, name, None)
        if value is not None:
            return value
    return None


def register_processors(register: Callable[..., None]) -> None:
    register(Guidance)
