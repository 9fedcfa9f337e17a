"""Shared fixtures: every test gets a fresh registry, and real plugin modules live in tests/plugins/."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from logitkit import registry as registry_module
from logitkit.registry import Registry, build_registry, set_registry

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS / "plugins"))


@pytest.fixture(autouse=True)
def fresh_registry() -> Iterator[None]:
    """No test sees another test's plugin manager."""
    set_registry(None)
    yield
    set_registry(None)


@pytest.fixture
def make_registry() -> object:
    """Build a registry from the installed entry points plus inline plugin modules, and make it current."""

    def make(inline: dict[str, object] | None = None, env: dict[str, str] | None = None, install: bool = True) -> Registry:
        reg = build_registry(inline=inline, env=env or {})
        if install:
            set_registry(reg)
        return reg

    return make


@pytest.fixture
def reg() -> Registry:
    """A fresh registry from the installed entry points only, independent of the caller's environment."""
    fresh = build_registry(env={})
    registry_module.set_registry(fresh)
    return fresh
