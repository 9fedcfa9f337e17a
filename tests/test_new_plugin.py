"""``logitkit new-plugin demo`` writes a package whose own tests pass once it is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from logitkit.cli import main
from logitkit.scaffold import names_for


def run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGITKIT_", "PYTHONPATH"))}
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_new_plugin_installs_and_passes_its_own_tests(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new-plugin", "demo", "--directory", str(tmp_path)]) == 0
    package = tmp_path / "logitkit-demo"
    assert {p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()} == {
        "pyproject.toml", "README.md", "logitkit_demo/__init__.py", "tests/test_demo.py",
    }  # fmt: skip
    assert (
        '[project.entry-points.logitkit]\ndemo = "logitkit_demo"'
        in (package / "pyproject.toml").read_text()
    )
    # A private environment that sees this one's packages: the install never leaks into other tests.
    venv = tmp_path / "venv"
    created = run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv)
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    pip = (sys.executable, "-m", "pip", "--python", python)
    installed = run(*pip, "install", "--no-deps", "--no-build-isolation", "-e", package)
    assert installed.returncode == 0, installed.stderr
    try:
        listed = run(python, "-m", "logitkit.cli", "list", "--json")
        assert '"demo_scale"' in listed.stdout and '"plugin": "demo"' in listed.stdout
        tests = run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=package)
        assert tests.returncode == 0, tests.stdout + tests.stderr
        # Two contract tests (one per example config) and the two unit tests of the template.
        assert "4 passed" in tests.stdout, tests.stdout
    finally:
        removed = run(*pip, "uninstall", "-y", "logitkit-demo")
    assert removed.returncode == 0, removed.stderr


def test_new_plugin_refuses_bad_names_and_existing_folders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert names_for("My-Plugin")["package"] == "logitkit_my_plugin"
    assert main(["new-plugin", "9lives", "-d", str(tmp_path)]) == 2
    assert "does not make a Python package name" in capsys.readouterr().err
    assert main(["new-plugin", "demo", "-d", str(tmp_path)]) == 0
    assert main(["new-plugin", "demo", "-d", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
