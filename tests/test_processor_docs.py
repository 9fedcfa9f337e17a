"""Docs cannot drift: every built-in processor has a `## name` section under docs/processors/
(or, for the samplers of other engines, a page under docs/samplers/)."""

from __future__ import annotations

import re
from pathlib import Path

from logitkit.registry import build_registry

DOCS = Path(__file__).resolve().parent.parent / "docs" / "processors"
HEADING = re.compile(r"^## (\S+)\s*$", re.MULTILINE)


SAMPLERS = DOCS.parent / "samplers"


def documented() -> dict[str, Path]:
    """``## name`` sections under docs/processors/, plus the one-page-per-sampler docs/samplers/."""
    sections = {name: page for page in sorted(DOCS.glob("*.md")) for name in HEADING.findall(page.read_text(encoding="utf-8"))}
    return {**sections, **{page.stem: page for page in SAMPLERS.glob("*.md") if page.stem != "index"}}


def builtin_processors() -> set[str]:
    reg = build_registry(env={})
    builtin_plugins = {info.name for info in reg.plugins if info.builtin}
    return {entry.name for entry in reg.processors.values() if entry.plugin in builtin_plugins}


def test_every_builtin_processor_has_a_docs_section() -> None:
    names = builtin_processors()
    assert "repetition_penalty" in names  # the registry really loaded the built-ins
    missing = sorted(names - set(documented()))
    assert not missing, f"add a '## <name>' section under docs/processors/ (or a docs/samplers/ page) for: {', '.join(missing)}"


def test_each_section_has_stage_parameters_and_an_example() -> None:
    """The sections of this family's pages say where the processor runs and show a config."""
    pages = ["temperature", "penalties", "ngrams", "bias", "masks", "forcing", "length", "numerics", "structured"]
    for page in pages:
        text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
        for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
            name = section.split()[0]
            assert "Stage:" in section, f"{page}.md: {name} does not name its stage"
            assert "Parameters" in section, f"{page}.md: {name} does not list its parameters"
            assert "```" in section, f"{page}.md: {name} has no example"


def yaml_examples(page: str) -> list[str]:
    text = (DOCS / f"{page}.md").read_text(encoding="utf-8")
    return re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)


def test_yaml_examples_of_this_family_validate() -> None:
    """Every YAML example on these pages is a valid config, so the docs cannot show a broken one."""
    import yaml

    from logitkit.config import resolve

    registry = build_registry(env={})
    pages = ["temperature", "penalties", "ngrams", "bias", "masks", "forcing", "length", "numerics", "structured"]
    checked = 0
    for page in pages:
        for example in yaml_examples(page):
            resolve(yaml.safe_load(example), registry=registry, source=f"{page}.md")
            checked += 1
    assert checked >= 15
