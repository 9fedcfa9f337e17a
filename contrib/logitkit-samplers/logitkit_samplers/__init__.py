"""logitkit-samplers: the samplers of llama.cpp, text-generation-webui, vLLM and the OpenAI API.

A third-party logitkit plugin: it is found through the ``samplers`` entry point
in group ``logitkit`` and uses only logitkit's public API.
"""

from __future__ import annotations

from collections.abc import Callable

from logitkit import hookimpl
from logitkit_samplers.bias import AllowedTokenIds, LogitBias
from logitkit_samplers.dry import Dry
from logitkit_samplers.mirostat import Mirostat, MirostatV2
from logitkit_samplers.penalties import FrequencyPenalty, PresencePenalty
from logitkit_samplers.temperature import DynamicTemperature, QuadraticSmoothing
from logitkit_samplers.truncation import TailFree, TopA, TopNSigma
from logitkit_samplers.xtc import Xtc

PROCESSORS = (
    LogitBias,
    AllowedTokenIds,
    FrequencyPenalty,
    PresencePenalty,
    Dry,
    TopNSigma,
    DynamicTemperature,
    QuadraticSmoothing,
    TailFree,
    TopA,
    Xtc,
)
SELECTORS = (Mirostat, MirostatV2)

__all__ = ["PROCESSORS", "SELECTORS"]


@hookimpl
def register_processors(register: Callable[..., None]) -> None:
    for cls in PROCESSORS:
        register(cls)


@hookimpl
def register_selectors(register: Callable[..., None]) -> None:
    for cls in SELECTORS:
        register(cls)
