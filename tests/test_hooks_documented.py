"""Docs and code cannot drift: every hook's exact signature is a heading in docs/."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from logitkit import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs"


def hook_signatures() -> list[str]:
    found = []
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(fn, "logitkit_spec"):
            found.append(f"{name}({', '.join(inspect.signature(fn).parameters)})")
    return found


def test_there_are_hooks() -> None:
    assert "register_processors(register)" in hook_signatures()


def test_every_hook_is_a_docs_heading() -> None:
    headings = {
        match.group(1).strip("` ")
        for page in DOCS.rglob("*.md")
        for match in re.finditer(r"^#+\s+(.+)$", page.read_text(encoding="utf-8"), re.M)
    }
    missing = [sig for sig in hook_signatures() if sig not in headings]
    assert missing == [], f"hooks without a docs heading: {missing}"


def test_hooks_take_keyword_arguments_only_and_have_docstrings() -> None:
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(fn, "logitkit_spec"):
            assert inspect.getdoc(fn), name
