"""``logitkit plugins``: loaded, failed and skipped plugins."""

from __future__ import annotations

import argparse

from logitkit.commands._output import console, print_json, table
from logitkit.registry import registry

HELP = "Show loaded plugins with their versions and hooks, and the plugins that failed to load."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    reg = registry()
    if args.json:
        print_json(
            {
                "loaded": [
                    {"name": p.name, "version": p.version, "builtin": p.builtin, "hooks": p.hooks, "registered": p.registered}
                    for p in reg.plugins
                ],
                "failed": [{"name": f.plugin, "phase": f.phase, "error": f.error} for f in reg.failures],
                "skipped": reg.skipped,
            }
        )
        return 0
    rows = [(p.name, p.version, "yes" if p.builtin else "", ", ".join(h.removeprefix("register_") for h in p.hooks), ", ".join(p.registered)) for p in reg.plugins]
    table("Loaded plugins", ("name", "version", "built-in", "hooks", "registered"), rows)
    if reg.failures:
        table("Failed plugins", ("name", "phase", "error"), [(f.plugin, f.phase, f.error) for f in reg.failures])
    if reg.skipped:
        console.print(f"Skipped by LOGITKIT_* settings: {', '.join(reg.skipped)}")
    return 0
