"""Shared fixtures: every test gets a fresh registry, and real plugin modules live in tests/plugins/."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from logitkit.registry import Registry, build_registry, set_registry

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS / "plugins"))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Build logitkit's CPU kernels before any test runs: the first build on a machine takes
    about 40 s, which no test's own timing (hypothesis deadlines) should absorb."""
    from logitkit import native

    native.kernels()


@pytest.fixture(params=["kernels", "torch ops"])
def cpu_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test on logitkit's CPU kernels, then on the torch ops that stand in for them
    where the kernels do not apply (GPU, no compiler): both must give the same results."""
    from logitkit import native

    if request.param == "torch ops":
        monkeypatch.setattr(native, "kernel", lambda name, tensor: None)
    else:
        assert native.kernels() is not None, f"the CPU kernels did not build: {native.build_error()}"
    return str(request.param)


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
    set_registry(fresh)
    return fresh


def write_dist_info(site: Path, dist: str, version: str, entry_points: dict[str, str]) -> Path:
    """Make ``site`` look like an installed distribution with entry points in group ``logitkit``.

    importlib.metadata finds it once ``site`` is on sys.path (or PYTHONPATH for a subprocess).
    """
    import entry_points_txt

    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    eps = {
        "logitkit": {
            name: entry_points_txt.EntryPoint("logitkit", name, value.partition(":")[0], value.partition(":")[2] or None, ()) for name, value in entry_points.items()
        }
    }
    with (info / "entry_points.txt").open("w", encoding="utf-8") as fh:
        entry_points_txt.dump(eps, fh)
    return info
