"""logitkit: a plugin-based registry of logits processors and the pipeline that runs them."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from logitkit.contract_checks import ProcessorContractError
from logitkit.errors import ConfigError, Problem
from logitkit.hookspecs import hookimpl
from logitkit.integrations.wrapping import wrap
from logitkit.pipeline import EmptyRowError, Pipeline
from logitkit.processor import (
    CheckContext,
    EmptyConfig,
    NewRows,
    Processor,
    ProcessorConfig,
    RowState,
    Selector,
    StepContext,
    TokenSettings,
)
from logitkit.registry import Registry, build_registry, registry
from logitkit.stages import Stage
from logitkit.state import BatchState, RowStateError

try:
    __version__ = metadata.version("logitkit")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = [
    "BatchState",
    "CheckContext",
    "ConfigError",
    "EmptyConfig",
    "EmptyRowError",
    "NewRows",
    "Pipeline",
    "Problem",
    "Processor",
    "ProcessorConfig",
    "ProcessorContractError",
    "Registry",
    "RowState",
    "RowStateError",
    "Selector",
    "Stage",
    "StepContext",
    "TokenSettings",
    "__version__",
    "build_registry",
    "hookimpl",
    "registry",
    "wrap",
]


def __getattr__(name: str) -> Any:
    # The decoding loop pulls in more of transformers; load it only when asked for.
    if name == "generate":
        from logitkit.generation import generate

        globals()["generate"] = generate
        return generate
    if name == "stream":
        from logitkit.streaming import stream

        globals()["stream"] = stream
        return stream
    raise AttributeError(f"module 'logitkit' has no attribute {name!r}")
