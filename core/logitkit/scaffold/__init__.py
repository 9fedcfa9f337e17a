"""``logitkit new-plugin``: write a ready plugin package that installs and passes its own tests."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from logitkit.errors import ConfigError, Problem

TEMPLATES = Path(__file__).with_name("templates")


def names_for(name: str) -> dict[str, str]:
    """The names a plugin called ``name`` uses: distribution, import package, entry point, processor."""
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug or not slug[0].isalpha() or keyword.iskeyword(slug):
        raise ConfigError(
            [
                Problem(
                    "new-plugin",
                    "NAME",
                    f"{name!r} does not make a Python package name; use letters, digits, '-' or '_'",
                )
            ]
        )
    return {
        "name": slug,
        "distribution": f"logitkit-{slug.replace('_', '-')}",
        "package": f"logitkit_{slug}",
        "processor": f"{slug}_scale",
        "class_name": "".join(part.capitalize() for part in slug.split("_")) + "Scale",
    }


def taken_by(values: dict[str, str]) -> str | None:
    """Why a plugin with these names would clash with what is installed, or ``None``."""
    from importlib.metadata import entry_points
    from importlib.util import find_spec

    for ep in entry_points(group="logitkit"):
        if ep.name == values["name"]:
            dist = getattr(ep, "dist", None)
            owner = f" ({dist.metadata['Name']})" if dist is not None else ""
            return f"an installed plugin{owner} already uses the entry-point name {values['name']!r}"
    try:
        spec = find_spec(values["package"])
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        return f"the Python package {values['package']!r} is already installed; it would be shadowed"
    return None


def render(template: str, values: dict[str, str]) -> str:
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], template)


def write_plugin(name: str, parent: Path, *, force: bool = False) -> Path:
    """Write the package ``logitkit-NAME`` under ``parent``; returns its folder."""
    values = names_for(name)
    clash = taken_by(values)
    if clash is not None:
        raise ConfigError([Problem("new-plugin", "NAME", f"{name!r}: {clash}; choose another name")])
    root = parent / values["distribution"]
    if root.exists() and any(root.iterdir()) and not force:
        raise ConfigError(
            [Problem(str(root), "", "folder exists and is not empty; pass --force to overwrite")]
        )
    for template in sorted(TEMPLATES.rglob("*.tmpl")):
        relative = render(str(template.relative_to(TEMPLATES)).removesuffix(".tmpl"), values)
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(template.read_text(encoding="utf-8"), values), encoding="utf-8")
    return root
