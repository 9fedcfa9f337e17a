"""The docs site builds with no broken links, and the generated pages match the code."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from logitkit import docs_gen
from logitkit.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def mkdocs_build(root: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"), "-d", str(site)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip


def test_docs_build_strict(tmp_path: Path) -> None:
    result = mkdocs_build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stderr[-4000:]
    assert (tmp_path / "site" / "formats" / "index.html").exists()


def test_a_broken_link_fails_the_build(tmp_path: Path) -> None:
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(DOCS, tmp_path / "docs")
    (tmp_path / "docs" / "broken.md").write_text(
        "# Broken\n\nSee [a missing page](no-such-page.md).\n"
    )
    result = mkdocs_build(tmp_path, tmp_path / "site")
    assert result.returncode != 0
    assert "no-such-page.md" in result.stderr


def test_every_page_is_in_the_site() -> None:
    # No pinned nav: pages other engineers add under docs/ are always built and link-checked.
    assert "nav" not in yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))


def test_hook_reference_is_generated_from_the_hookspecs() -> None:
    page = (DOCS / docs_gen.HOOKS_PAGE).read_text(encoding="utf-8")
    assert page == docs_gen.render_hooks(), (
        "docs/plugins/hooks.md is stale: run python -m logitkit.docs_gen"
    )
    assert "\n### register_processors(register)\n" in page
    assert docs_gen.main(["--check"]) == 0


def test_docs_gen_check_reports_a_stale_page(tmp_path: Path) -> None:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "hooks.md").write_text("# old\n")
    assert docs_gen.main(["--check", "--docs", str(tmp_path)]) == 1
    assert docs_gen.main(["--docs", str(tmp_path)]) == 0
    assert docs_gen.main(["--check", "--docs", str(tmp_path)]) == 0


def test_every_engine_sampler_has_a_page_citing_its_reference(reg: Registry) -> None:
    names = [
        e.name
        for e in (*reg.processors.values(), *reg.selectors.values())
        if e.cls.__module__.startswith("logitkit_builtins.engines.")
    ]
    assert len(names) == 13
    for name in names:
        page = DOCS / "samplers" / f"{name}.md"
        assert page.exists(), f"no docs page for sampler {name!r}"
        text = page.read_text(encoding="utf-8")
        assert text.startswith(f"# {name}\n") and "Reference:" in text and "Parameters" in text, (
            name
        )
        assert "Stage:" in text and "```yaml" in text, name
