"""A plugin whose order preset raises when a config uses it."""

from __future__ import annotations

from typing import Any

from logitkit import hookimpl


def explodes(classes: list[Any]) -> list[Any]:
    raise KeyError("no rank for this processor")


@hookimpl
def register_order_presets(register):  # type: ignore[no-untyped-def]
    register("explodes", explodes, "an order preset that fails")
