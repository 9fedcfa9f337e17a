"""The samplers of llama.cpp, text-generation-webui, vLLM and the OpenAI API.

A built-in family because the OpenAI and llama.cpp formats translate to them:
``logitkit convert`` and ``Pipeline.from_openai`` must work on the default
install. Like every family, it uses only logitkit's public API.
"""

from __future__ import annotations

from collections.abc import Callable

from logitkit_builtins.engines.bias import AllowedTokenIds, LogitBias
from logitkit_builtins.engines.dry import Dry
from logitkit_builtins.engines.mirostat import Mirostat, MirostatV2
from logitkit_builtins.engines.penalties import FrequencyPenalty, PresencePenalty
from logitkit_builtins.engines.temperature import DynamicTemperature, QuadraticSmoothing
from logitkit_builtins.engines.truncation import TailFree, TopA, TopNSigma
from logitkit_builtins.engines.xtc import Xtc

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


def register_processors(register: Callable[..., None]) -> None:
    for cls in PROCESSORS:
        register(cls)


def register_selectors(register: Callable[..., None]) -> None:
    for cls in SELECTORS:
        register(cls)
