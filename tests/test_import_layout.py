"""The core's layering: the pipeline, the formats and the integrations import one another in no circle.

Every import counts, including those inside functions and under TYPE_CHECKING,
so the test reads the source rather than ``sys.modules``.
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).parents[1] / "core" / "logitkit"
LAYER = ("logitkit.pipeline", "logitkit.formats", "logitkit.integrations")


def module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("logitkit")}


def in_layer(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in LAYER)


def test_pipeline_formats_and_integrations_form_no_cycle() -> None:
    graph = {
        module_name(p): {i for i in imports_of(p) if in_layer(i)}
        for p in CORE.rglob("*.py")
        if in_layer(module_name(p))
    }
    assert "logitkit.pipeline" in graph and "logitkit.formats.hf_processors" in graph

    def cycle_from(start: str, node: str, seen: tuple[str, ...]) -> tuple[str, ...] | None:
        for nxt in graph.get(node, ()):
            if nxt == start:
                return (*seen, nxt)
            if nxt not in seen:
                found = cycle_from(start, nxt, (*seen, nxt))
                if found:
                    return found
        return None

    cycles = [c for start in graph if (c := cycle_from(start, start, (start,)))]
    assert cycles == [], " -> ".join(cycles[0])
