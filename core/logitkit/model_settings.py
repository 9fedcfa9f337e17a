"""The ``generation:`` settings that shape the model's forward passes, not the token choice.

Caches, compilation and extra outputs, named as in transformers'
``GenerationConfig``. ``GenerationSettings`` inherits these fields; the code
that acts on them lives in ``logitkit.caches`` and ``logitkit.forward``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, field_validator

from logitkit.strict import StrictModel

#: Every ``cache_implementation`` transformers 5.24 knows (``paged`` switches it to continuous batching).
CacheImplementation = Literal[
    "dynamic",
    "static",
    "sliding_window",
    "hybrid",
    "hybrid_chunked",
    "offloaded",
    "offloaded_static",
    "offloaded_hybrid",
    "offloaded_hybrid_chunked",
    "quantized",
    "paged",
]


class ModelCallSettings(StrictModel):
    """How ``logitkit.generate`` calls the model: KV cache, compilation, recorded outputs."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    #: False: no KV cache, the whole sequence is fed at every step (same tokens, slower).
    use_cache: bool = True
    #: Unset: the model's default cache (a DynamicCache).
    cache_implementation: CacheImplementation | None = None
    #: Keyword arguments of the cache class (``quantized``: backend, nbits, ...).
    cache_config: dict[str, Any] | None = None
    #: Fields of transformers' ``CompileConfig``; used when a compilable cache allows compilation.
    compile_config: dict[str, Any] | None = None
    disable_compile: bool = False
    #: Keep every step's attention weights / hidden states in the output (as transformers does).
    output_attentions: bool = False
    output_hidden_states: bool = False

    @field_validator("compile_config")
    @classmethod
    def _compile_fields(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # Checked here, so `logitkit validate` reports a misspelt field before any generation runs.
        if not value:
            return value
        try:
            import inspect

            from transformers import CompileConfig
        except ImportError:  # pragma: no cover - checked again where it is used
            return value
        known = [*inspect.signature(CompileConfig).parameters, "_compile_all_devices"]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ValueError(f"unknown CompileConfig field {', '.join(unknown)}; CompileConfig takes {', '.join(known)}")
        return value


def from_generation_config(gc: Any) -> dict[str, Any]:
    """These fields of a transformers ``GenerationConfig``, for the ``generation:`` section.

    Only values that differ from the defaults above are returned, so the
    result merges into whatever else the translation carries. A
    ``CompileConfig`` becomes the mapping of its fields (its
    ``_compile_all_devices`` flag included, when set).
    """
    defaults = ModelCallSettings()
    out: dict[str, Any] = {}
    for name in ModelCallSettings.model_fields:
        value = getattr(gc, name, None)
        if name == "compile_config" and value is not None and not isinstance(value, dict):
            fields = dict(value.to_dict())
            if getattr(value, "_compile_all_devices", None) is not None:
                fields["_compile_all_devices"] = bool(value._compile_all_devices)
            value = fields
        if name == "cache_config" and value is not None and not isinstance(value, dict):
            value = dict(value.to_dict()) if hasattr(value, "to_dict") else dict(vars(value))
        if value is None or value == getattr(defaults, name):
            continue
        out[name] = value
    return out


#: transformers 5.24 builds a StaticCache for these, sized by ``max_cache_len`` alone.
STATIC_CACHES = ("static", "sliding_window", "hybrid", "hybrid_chunked")


def unused_cache_options(section: dict[str, Any]) -> list[tuple[str, str]]:
    """Drop the ``cache_config`` keys transformers 5.24 ignores, from a translated ``generation:`` section.

    5.24 reads ``cache_config`` only for a quantized cache; a static one takes
    its size alone (``max_cache_len``) and a dynamic one nothing. logitkit
    refuses such keys in its own configs, so a translated config drops them
    instead and names each one (returned as ``(field, reason)``).
    """
    options = section.get("cache_config")
    kind = section.get("cache_implementation")
    if not options or kind == "quantized":
        return []
    keep = {"max_cache_len"} if kind in STATIC_CACHES and section.get("use_cache", True) else set()
    dropped = sorted(set(options) - keep)
    kept = {k: v for k, v in options.items() if k in keep}
    if kept:
        section["cache_config"] = kept
    else:
        section.pop("cache_config")
    where = f"a {kind} cache" if kind in STATIC_CACHES else "a dynamic cache (or none)"
    return [(f"cache_config.{key}", f"transformers ignores it with {where}; so does logitkit") for key in dropped]
