"""What the model adapters (``logitkit.models``) pass to a transformers model, besides the tokens.

transformers 5.24's ``generate()`` feeds every forward pass ``position_ids``
counted from the attention mask, ``logits_to_keep=1``, the caller's extra
model keywords (``token_type_ids`` grown by its last column each step, other
tensors repeated per beam), and the ``output_*`` flags; it records the
attentions and hidden states each step returns, and it swaps in a compiled
forward for the decoding steps when the cache allows. ``ForwardOptions``
carries those choices and ``Recorded`` what came back.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from logitkit.caches import CacheFactory
from logitkit.errors import ConfigError, Problem

#: Keywords the adapters set themselves: a caller passing one would fight the loop.
RESERVED = {
    "input_ids", "attention_mask", "decoder_input_ids", "past_key_values", "cache", "use_cache",
    "return_dict", "position_ids", "logits_to_keep", "output_attentions", "output_hidden_states",
    "encoder_outputs", "labels", "cache_position",
}  # fmt: skip
#: Prefixes transformers keeps away from the encoder of an encoder-decoder.
NOT_FOR_ENCODER = ("decoder_", "cross_attn", "use_cache")
#: Device types on which transformers compiles the decoding step by default.
COMPILE_DEVICES = ("cuda", "xpu", "neuron", "tpu")


@dataclass
class Recorded:
    """Per forward pass, what the model returned besides logits (only what was asked for)."""

    attentions: list[Any] = field(default_factory=list)
    hidden_states: list[Any] = field(default_factory=list)
    cross_attentions: list[Any] = field(default_factory=list)
    encoder_attentions: Any = None
    encoder_hidden_states: Any = None

    def add(self, outputs: Any, encoder_decoder: bool, attentions: bool, hidden: bool) -> None:
        if attentions:
            self.attentions.append(outputs.decoder_attentions if encoder_decoder else outputs.attentions)
            if encoder_decoder:
                self.cross_attentions.append(outputs.cross_attentions)
        if hidden:
            self.hidden_states.append(
                outputs.decoder_hidden_states if encoder_decoder else outputs.hidden_states
            )


@dataclass
class ForwardOptions:
    """How the adapters call the model. The defaults are what ``generate()`` did before these options."""

    use_cache: bool = True
    #: Builds the KV cache (static, ...); None lets the model create its default one.
    make_cache: CacheFactory | None = None
    #: A transformers ``CompileConfig`` (None: the model's default) and whether compiling is ruled out.
    compile_config: Any = None
    disable_compile: bool = False
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    output_attentions: bool = False
    output_hidden_states: bool = False


def accepts(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def flags(options: ForwardOptions) -> dict[str, bool]:
    """The ``output_*`` keywords to pass (only the true ones, as transformers does)."""
    out = {}
    if options.output_attentions:
        out["output_attentions"] = True
    if options.output_hidden_states:
        out["output_hidden_states"] = True
    return out


def expand_rows(kwargs: dict[str, Any], rows: int) -> dict[str, Any]:
    """Tensors with one row per prompt repeated to ``rows`` (each prompt's beams / returned sequences)."""
    out = {}
    for key, value in kwargs.items():
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] not in (0, rows):
            if rows % value.shape[0]:
                raise ValueError(f"model keyword {key!r} has {value.shape[0]} rows for {rows}")
            value = value.repeat_interleave(rows // value.shape[0], dim=0)
        out[key] = value
    return out


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """transformers' position ids for left-padded prompts: count real tokens, 0 on the padding."""
    positions = mask.long().cumsum(-1) - 1
    return positions.masked_fill(mask == 0, 0)


def encoder_kwargs(encoder: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The model keywords an encoder-decoder's encoder takes (as transformers picks them)."""
    try:
        params = inspect.signature(encoder.forward).parameters
    except (TypeError, ValueError):
        return {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    return {
        k: v
        for k, v in kwargs.items()
        if not k.startswith(NOT_FOR_ENCODER) and (takes_any or k in params)
    }


def step_call(model: Any, cache: Any, options: ForwardOptions) -> Callable[..., Any]:
    """The model call for decoding steps: compiled when transformers 5.24 would compile it, else the plain one."""
    if not _should_compile(model, cache, options):
        return model  # type: ignore[no-any-return]
    return model.get_compiled_call(options.compile_config)  # type: ignore[no-any-return]


def _should_compile(model: Any, cache: Any, options: ForwardOptions) -> bool:
    # transformers' GenerationMixin._valid_auto_compile_criteria, rule for rule.
    if options.disable_compile or cache is None or not hasattr(model, "get_compiled_call"):
        return False
    from transformers import DynamicCache, EncoderDecoderCache

    device = str(getattr(getattr(model, "device", None), "type", "cpu"))
    all_devices = bool(getattr(options.compile_config, "_compile_all_devices", None))
    decoder_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
    compilable = bool(getattr(cache, "is_compileable", False)) and type(decoder_cache) is not DynamicCache
    can = (device in COMPILE_DEVICES or all_devices) and compilable
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        can = can and bool(quantizer.is_compileable)
    device_map = getattr(model, "hf_device_map", None)
    if device_map:
        devices = set(device_map.values())
        can = can and not ("cpu" in devices and len(devices) > 1) and "disk" not in devices
    return can


def compile_config(value: Any) -> Any:
    """A transformers ``CompileConfig`` from the ``compile_config`` setting (a mapping of its fields)."""
    if value is None:
        return None
    from transformers import CompileConfig

    options = dict(value)
    all_devices = options.pop("_compile_all_devices", None)
    try:
        config = CompileConfig(**options)
    except TypeError as exc:
        known = ", ".join(inspect.signature(CompileConfig).parameters)
        raise ConfigError(
            [Problem("generate()", "generation.compile_config", f"{exc}; CompileConfig takes {known}")]
        ) from None
    if all_devices is not None:
        config._compile_all_devices = bool(all_devices)  # type: ignore[assignment]
    return config


def model_keywords(model: Any, names: list[str]) -> list[str]:
    """Of ``names``, those the transformers ``model`` does not take (transformers' _validate_model_kwargs)."""
    config = getattr(model, "config", None)
    if config is None or not hasattr(model, "forward"):
        return list(names)
    allowed = set(inspect.signature(model.prepare_inputs_for_generation).parameters)
    if "kwargs" in allowed or "model_kwargs" in allowed:
        allowed |= set(inspect.signature(model.forward).parameters)
    if getattr(config, "is_encoder_decoder", False):
        for part, prefix in (("encoder", ""), ("decoder", "decoder_")):
            module = getattr(model, part, None)
            if module is None:
                base = getattr(model, getattr(model, "base_model_prefix", ""), None)
                module = getattr(base, part, None)
            if module is not None:
                allowed |= {prefix + p for p in inspect.signature(module.forward).parameters}
    try:
        from transformers.utils.generic import TransformersKwargs

        allowed |= set(TransformersKwargs.__optional_keys__)
    except ImportError:  # pragma: no cover - older transformers
        pass
    allowed -= {"kwargs", "model_kwargs"}
    return [n for n in names if n not in allowed or n in RESERVED]
