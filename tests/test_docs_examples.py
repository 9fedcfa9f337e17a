"""Every Python example in README.md and docs/ runs.

Each page's ```python blocks run in order in one namespace, in a fresh folder
that holds the repository's examples/. Before them runs the page's hidden
setup, an HTML comment starting ``<!-- docs-test setup``, which defines what
the prose assumes (a model, a tokenizer, a file). A block whose first line is
a ``# path/to/file.py`` comment is a file of a package the page builds: it is
written there (importable) and run into the page's namespace, as later blocks
build on it; a ``# tests/...`` block runs on its own and its zero-argument
``test_*`` functions are called. A block that is only a ``def`` signature line (the
hook reference) is a signature, not code, and is left out.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
SETUP = re.compile(r"<!-- docs-test setup[^\n]*\n(.*?)\n-->", re.DOTALL)
FILE_LINE = re.compile(r"# ([\w/]+\.py)\n")


def examples(page: Path) -> list[str]:
    return [b for b in BLOCK.findall(page.read_text(encoding="utf-8")) if not re.fullmatch(r"def [^\n]*\n?", b)]


#: Pages whose examples talk to a running vLLM engine or server: they need the vLLM venv. There,
#: contrib/logitkit-vllm/vllm_tests/test_server.py runs this page's OpenAI-client example as written
#: against the server it starts, and test_engine.py runs the same LLM(...) requests.
NEEDS_VLLM = {"docs/serving-vllm.md"}
PAGES_WITH_CODE = [p for p in PAGES if examples(p) and str(p.relative_to(ROOT)) not in NEEDS_VLLM]


def test_the_runner_sees_the_examples() -> None:
    assert sum(len(examples(p)) for p in PAGES_WITH_CODE) >= 15
    assert {"formats.md", "generation.md", "tutorial.md"} <= {p.name for p in PAGES_WITH_CODE}


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_example_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict[str, Any] = {"__name__": "docs_example"}
    text = page.read_text(encoding="utf-8")
    name = page.relative_to(ROOT)
    for setup in SETUP.findall(text):
        exec(compile(setup, f"{name} (setup)", "exec"), namespace)
    added = set(sys.modules)
    try:
        for index, code in enumerate(examples(page)):
            where = f"{name} example {index + 1}"
            file = FILE_LINE.match(code)
            if file is not None and not file.group(1).startswith("tests/"):
                target = tmp_path / file.group(1)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(code, encoding="utf-8")
                exec(compile(code, where, "exec"), namespace)  # later blocks on the page build on it
                continue
            scope = namespace if file is None else {"__name__": "docs_test_module"}
            exec(compile(code, where, "exec"), scope)
            for test_name, fn in list(scope.items()):
                if file is not None and test_name.startswith("test_") and callable(fn) and not getattr(fn, "pytestmark", None):
                    fn()
    finally:
        for module in set(sys.modules) - added:  # the page's own packages must not leak into other tests
            if module.startswith(("logitkit_floor", "docs_")):
                del sys.modules[module]
