"""logitkit's built-in processors and selectors: a plugin like any third-party one.

It is found through the ``logitkit`` entry point in logitkit's own
pyproject.toml; the core never imports it. Each family module has its own
``register_*`` functions; this module hands every hook to each family.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from logitkit import hookimpl
from logitkit_builtins import (
    bias,
    constraints,
    engines,
    forcing,
    guidance,
    length,
    masks,
    ngrams,
    numerics,
    orders,
    penalties,
    presets,
    search,
    selection,
    speculative,
    stopping,
    temperature,
    truncation,
    watermark,
)

FAMILIES: tuple[ModuleType, ...] = (
    temperature, truncation, selection, orders, presets,
    bias, penalties, ngrams, length, masks, forcing, numerics,
    stopping, search, speculative, guidance, watermark, engines, constraints,
)  # fmt: skip


def _each_family(hook: str, register: Callable[..., None]) -> None:
    for family in FAMILIES:
        impl = getattr(family, hook, None)
        if impl is not None:
            impl(register)


@hookimpl
def register_processors(register: Callable[..., None]) -> None:
    _each_family("register_processors", register)


@hookimpl
def register_selectors(register: Callable[..., None]) -> None:
    _each_family("register_selectors", register)


@hookimpl
def register_order_presets(register: Callable[..., None]) -> None:
    _each_family("register_order_presets", register)


@hookimpl
def register_config_presets(register: Callable[..., None]) -> None:
    _each_family("register_config_presets", register)


@hookimpl
def register_stopping_criteria(register: Callable[..., None]) -> None:
    _each_family("register_stopping_criteria", register)


@hookimpl
def register_search_strategies(register: Callable[..., None]) -> None:
    _each_family("register_search_strategies", register)
