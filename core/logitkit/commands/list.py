"""``logitkit list``: every registered processor, selector, config preset and order preset."""

from __future__ import annotations

import argparse

from logitkit.commands._output import console, print_json, table
from logitkit.registry import registry
from logitkit.stages import stage_label

HELP = "List registered processors, selectors and presets: name, stage, plugin, version."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    reg = registry()
    entries = sorted(reg.processors.values(), key=lambda e: (e.stage, e.cls.priority, e.name))
    selectors = sorted(reg.selectors.values(), key=lambda e: e.name)
    if args.json:
        print_json(
            {
                "processors": [
                    {"name": e.name, "stage": stage_label(e.stage), "priority": e.cls.priority,
                     "plugin": e.plugin, "version": e.version, "replaced": e.replaced, "summary": e.summary}
                    for e in entries
                ],
                "selectors": [
                    {"name": e.name, "plugin": e.plugin, "version": e.version, "replaced": e.replaced, "summary": e.summary}
                    for e in selectors
                ],
                "presets": [
                    {"name": e.name, "plugin": e.plugin, "description": e.description}
                    for e in sorted(reg.config_presets.values(), key=lambda e: e.name)
                ],
                "orders": [
                    {"name": e.name, "plugin": e.plugin, "description": e.description}
                    for e in sorted(reg.order_presets.values(), key=lambda e: e.name)
                ],
            }
        )
        return 0
    rows = [
        (e.name, stage_label(e.stage), e.cls.priority, e.plugin, e.version,
         f"replaces {e.replaced}'s" if e.replaced else "", e.summary)
        for e in entries
    ]
    table("Processors (in default run order)", ("name", "stage", "priority", "plugin", "version", "override", "summary"), rows)
    sel_rows = [(e.name, e.plugin, e.version, f"replaces {e.replaced}'s" if e.replaced else "", e.summary) for e in selectors]
    table("Selectors", ("name", "plugin", "version", "override", "summary"), sel_rows)
    for title, named in (("Config presets (preset: NAME, --preset NAME)", reg.config_presets),
                         ("Order presets (order: NAME)", reg.order_presets)):  # fmt: skip
        table(title, ("name", "plugin", "description"),
              [(e.name, e.plugin, e.description) for e in sorted(named.values(), key=lambda e: e.name)])  # fmt: skip
    if reg.failures:
        console.print(f"{len(reg.failures)} plugin(s) failed to load; see 'logitkit plugins'.")
    return 0
