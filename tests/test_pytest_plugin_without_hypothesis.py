"""Issue 15, item 18: logitkit's pytest11 plugin must not break other projects' test runs.

In a venv with logitkit installed the documented way (``pip install -e .``, no
test extras) hypothesis is absent. This builds that situation in a subprocess:
a shadow ``hypothesis`` module that cannot be imported comes first on the path,
and hypothesis' own pytest plugin is off (it would not be installed either).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SHADOW = 'raise ModuleNotFoundError("No module named \'hypothesis\'", name="hypothesis")\n'


def _run_other_project(tmp_path: Path, test_body: str) -> subprocess.CompletedProcess[str]:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "hypothesis.py").write_text(SHADOW, encoding="utf-8")
    project = tmp_path / "other_project"
    project.mkdir()
    (project / "test_other.py").write_text(test_body, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:hypothesispytest", str(project)],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_shadow_really_hides_hypothesis(tmp_path: Path) -> None:
    result = _run_other_project(tmp_path, "import hypothesis\n\ndef test_x():\n    pass\n")
    assert result.returncode != 0 and "No module named 'hypothesis'" in result.stdout + result.stderr


def test_another_projects_plain_suite_runs_without_hypothesis(tmp_path: Path) -> None:
    result = _run_other_project(tmp_path, "def test_plain():\n    assert 1 + 1 == 2\n")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    # The plugin really was loaded: its fixtures exist, and using one says what to install.
    body = "def test_uses_kit(processor_contract):\n    pass\n"
    used = _run_other_project(tmp_path / "b", body) if (tmp_path / "b").mkdir() is None else None
    assert used is not None and used.returncode != 0
    assert "pip install 'logitkit[testing]'" in used.stdout + used.stderr
