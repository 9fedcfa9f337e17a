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


def private_env(venv: Path) -> Path:
    """A venv that also sees this environment's packages, so installing into it never leaks into other tests.

    ``--system-site-packages`` would reach the base interpreter, not an enclosing venv (as in CI),
    so a .pth file adds this environment's site directories, editable installs included.
    """
    created = run(sys.executable, "-m", "venv", "--without-pip", venv)
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    purelib = run(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    ).stdout.strip()
    outer = [p for p in sys.path if p.endswith("site-packages")]
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in outer)
    (Path(purelib) / "_enclosing_env.pth").write_text(lines, encoding="utf-8")
    return python


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
    python = private_env(tmp_path / "venv")
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
