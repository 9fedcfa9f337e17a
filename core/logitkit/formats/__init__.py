"""Parameter formats of other engines, translated to and from logitkit configs.

- ``openai``: OpenAI chat-completions sampling parameters;
- ``llama.cpp``: a ``--samplers`` chain plus llama-server parameters;
- ``generation_config``: a transformers ``generation_config.json``;
- ``logitkit``: a logitkit config.

Every translation returns a ``Conversion``: the value, the parameters that
could not be carried over (``lost``) and the ones carried with a difference in
meaning (``notes``). Names of processors that the core does not ship resolve
through the registry when the config is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from logitkit.errors import ConfigError, Problem
from logitkit.formats.common import Conversion, Loss, Note, canonical
from logitkit.formats.generation_config import from_generation_config, to_generation_config
from logitkit.formats.llama_cpp import from_llama_cpp, parse_samplers, to_llama_cpp
from logitkit.formats.openai import from_openai, to_openai
from logitkit.registry import Registry

FORMATS = ("logitkit", "generation_config", "openai", "llama.cpp")


def to_logitkit(fmt: str, value: Any) -> Conversion:
    """A logitkit config dict from ``value`` in format ``fmt``."""
    if fmt == "logitkit":
        return Conversion(value)
    if fmt == "openai":
        return from_openai(_mapping(value, fmt))
    if fmt == "generation_config":
        return from_generation_config(_mapping(value, fmt))
    if fmt == "llama.cpp":
        params = dict(_mapping(value, fmt))
        return from_llama_cpp(params.pop("samplers", None), **params)
    raise ValueError(f"unknown format {fmt!r}; known: {', '.join(FORMATS)}")


WRITERS: dict[str, Callable[[Any, Registry | None], Conversion]] = {
    "openai": to_openai,
    "generation_config": to_generation_config,
    "llama.cpp": to_llama_cpp,
}


def convert(
    value: Any,
    source: str,
    target: str,
    registry: Registry | None = None,
    *,
    origin: str | None = None,
) -> Conversion:
    """Translate ``value`` from format ``source`` to ``target``, through a logitkit config.

    A logitkit result is in canonical form (see ``canonical``). Losses and notes
    from both halves are reported together. Raises ``ConfigError`` for invalid
    input; its problems name ``origin`` (the file) when given.
    """
    if target not in FORMATS:
        raise ValueError(f"unknown format {target!r}; known: {', '.join(FORMATS)}")
    first = to_logitkit(source, value)
    config = canonical(first.value, registry, source=origin)
    if target == "logitkit":
        return Conversion(config, first.lost, first.notes)
    second = WRITERS[target](config, registry)
    return Conversion(second.value, first.lost + second.lost, first.notes + second.notes)


def _mapping(value: Any, fmt: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(
            [Problem(f"<{fmt}>", "", f"expected a JSON object, not {type(value).__name__}")]
        )
    return value


__all__ = [
    "FORMATS",
    "Conversion",
    "Loss",
    "Note",
    "canonical",
    "convert",
    "from_generation_config",
    "from_llama_cpp",
    "from_openai",
    "parse_samplers",
    "to_generation_config",
    "to_llama_cpp",
    "to_logitkit",
    "to_openai",
]
