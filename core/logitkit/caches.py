"""KV caches for ``cache_implementation``, built as transformers 5.24's ``generate()`` builds them.

``dynamic`` (or unset) leaves the model to create its own DynamicCache.
``static`` and its 5.24 aliases (``sliding_window``, ``hybrid``,
``hybrid_chunked``: the StaticCache infers sliding layers from the model's
config) get a StaticCache of ``max_length - 1`` positions (``cache_config:
{max_cache_len: N}`` asks for more). The
others need something this machine may not have (a CUDA device, a
quantization package); without it they fail here, before any forward pass,
with an error naming what is missing rather than deep inside transformers.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

from logitkit.errors import ConfigError, Problem
from logitkit.model_settings import STATIC_CACHES
from logitkit.settings import GenerationSettings

SOURCE = "generate()"
FIELD = "generation.cache_implementation"
#: transformers 5.24 builds a StaticCache for each of these (the last three are deprecated aliases).
STATIC = STATIC_CACHES
#: These move the cache between a CUDA device and the CPU.
OFFLOADED = ("offloaded", "offloaded_static", "offloaded_hybrid", "offloaded_hybrid_chunked")
#: Quantized-cache backends and the package each one imports.
QUANT_BACKENDS = {"quanto": ("optimum.quanto", "optimum-quanto"), "hqq": ("hqq", "hqq")}

#: ``make(rows, encoder_length) -> cache``: rows is batch x beams; encoder_length is None on decoder-only models.
CacheFactory = Callable[[int, int | None], Any]


def _problem(reason: str, field: str = FIELD) -> ConfigError:
    return ConfigError([Problem(SOURCE, field, reason)])


def _device_type(model: Any) -> str:
    device = getattr(model, "device", None)
    return str(getattr(device, "type", "cpu"))


def _static_length(settings: GenerationSettings, max_length: int) -> int:
    options = dict(settings.cache_config or {})
    extra = sorted(set(options) - {"max_cache_len"})
    if extra:
        raise _problem(
            f"a static cache takes only max_cache_len, not {', '.join(extra)}", "generation.cache_config"
        )
    # The last token is never fed back, so max_length - 1 positions suffice (transformers sizes it so).
    needed = max_length - 1
    wanted = options.get("max_cache_len")
    if wanted is None:
        return needed
    if not isinstance(wanted, int) or wanted < needed:
        raise _problem(
            f"max_cache_len must be an integer >= max_length - 1 = {needed} (got {wanted!r})",
            "generation.cache_config",
        )
    return wanted


def _require_cuda(name: str, model: Any) -> None:
    import torch

    if not torch.cuda.is_available() or _device_type(model) != "cuda":
        raise _problem(
            f"{name!r} offloads the cache from a CUDA device to the CPU: it needs CUDA and the model on it "
            f"(torch CUDA available: {torch.cuda.is_available()}, model on {_device_type(model)})"
        )


def _quantized(settings: GenerationSettings, model: Any, encoder_decoder: bool) -> CacheFactory:
    if encoder_decoder:
        raise _problem("'quantized' works on decoder-only models only (as in transformers)")
    options = dict(settings.cache_config or {})
    backend = str(options.pop("backend", "quanto"))
    if backend not in QUANT_BACKENDS:
        raise _problem(f"unknown quantized-cache backend {backend!r}; known: quanto, hqq", "generation.cache_config")
    module, package = QUANT_BACKENDS[backend]
    if importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None:
        raise _problem(f"'quantized' with backend {backend!r} needs {package}: pip install {package}")
    from transformers import QuantizedCache

    config = model.config.get_text_config(decoder=True)

    def make(rows: int, encoder_length: int | None) -> Any:
        return QuantizedCache(backend=backend, config=config, **options)

    return make


def cache_factory(
    settings: GenerationSettings, model: Any, max_length: int, encoder_decoder: bool
) -> CacheFactory | None:
    """How to build the cache ``settings`` ask for, or None for the model's own default."""
    name = settings.cache_implementation
    if not settings.use_cache or name in (None, "dynamic"):
        if settings.cache_config:
            raise _problem(
                "cache_config applies to static and quantized caches only", "generation.cache_config"
            )
        return None
    if name == "paged":
        raise _problem(
            "'paged' is transformers' continuous-batching server, not a cache for generate(); "
            "logitkit's batch hosts (docs/state.md) add and remove rows instead"
        )
    if name == "quantized":
        return _quantized(settings, model, encoder_decoder)
    offload = name in OFFLOADED
    if offload:
        _require_cuda(name, model)
    from transformers import DynamicCache, EncoderDecoderCache, StaticCache

    config = model.config.get_text_config(decoder=True)
    length = None if name == "offloaded" else _static_length(settings, max_length)

    def make(rows: int, encoder_length: int | None) -> Any:
        if length is None:
            cache: Any = DynamicCache(config=config, offloading=True)
        else:
            cache = StaticCache(config=config, max_cache_len=length, offloading=offload)
        if not encoder_decoder:
            return cache
        if isinstance(cache, DynamicCache):
            return EncoderDecoderCache(cache, DynamicCache(config=config))
        assert encoder_length is not None
        cross = StaticCache(config=config, max_cache_len=encoder_length, offloading=offload)
        return EncoderDecoderCache(cache, cross)

    return make
