"""Plugin discovery: entry points in group ``logitkit``, loaded one by one with errors caught per plugin.

Loading order is fixed: the built-ins first, then third-party entry points in
name order, then plugins passed inline (tests, notebooks). Environment:

- ``LOGITKIT_DISABLE_PLUGINS=a,b``: never import these plugins.
- ``LOGITKIT_PLUGINS=a,b``: load only these third-party plugins (the built-ins still load unless disabled).
- ``LOGITKIT_DISABLE_PLUGIN_AUTOLOAD=1``: load the built-ins only.
- ``LOGITKIT_STRICT_PLUGINS=1``: a plugin that fails to load is fatal.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

import pluggy

from logitkit import hookspecs

log = logging.getLogger("logitkit.plugins")

ENTRY_POINT_GROUP = "logitkit"
BUILTINS_MODULE = "logitkit_builtins"


class PluginLoadError(RuntimeError):
    """Raised in strict mode when a plugin fails to import or register."""


@dataclass(frozen=True)
class PluginSource:
    """A plugin that can be loaded: an entry point, or an object given inline."""

    name: str
    version: str
    builtin: bool
    entry_point: EntryPoint | None = None
    inline: object | None = None

    def load(self) -> object:
        if self.inline is not None:
            return self.inline
        assert self.entry_point is not None
        return self.entry_point.load()


def _env_list(env: Mapping[str, str], key: str) -> set[str] | None:
    raw = env.get(key)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _env_flag(env: Mapping[str, str], key: str) -> bool:
    return env.get(key, "").strip().lower() in {"1", "true", "yes", "on"}


def strict_mode(env: Mapping[str, str] | None = None) -> bool:
    return _env_flag(os.environ if env is None else env, "LOGITKIT_STRICT_PLUGINS")


def discover(env: Mapping[str, str] | None = None) -> list[PluginSource]:
    """The installed entry points in group ``logitkit``, built-ins first."""
    env = os.environ if env is None else env
    found: dict[tuple[str, str, str], PluginSource] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        version = dist.version if dist is not None else "?"
        dist_name = dist.metadata["Name"] if dist is not None else "?"
        builtin = ep.value.split(":")[0] == BUILTINS_MODULE and dist_name == "logitkit"
        # The same distribution can be visible twice (editable + site install); keep the first.
        # Two distributions with one entry-point name are both kept, even when the entry points
        # read the same (a scaffold named after the built-ins): loading reports the second by name.
        key = (ep.name, ep.value, dist_name)
        found.setdefault(key, PluginSource(ep.name, version, builtin, entry_point=ep))
    return sorted(found.values(), key=lambda s: (not s.builtin, s.name))


def select_sources(
    sources: Iterable[PluginSource], env: Mapping[str, str] | None = None
) -> tuple[list[PluginSource], list[str]]:
    """Apply the block-list, allow-list and autoload switch before anything is imported.

    Returns the sources to load and the names that were skipped.
    """
    env = os.environ if env is None else env
    blocked = _env_list(env, "LOGITKIT_DISABLE_PLUGINS") or set()
    allowed = _env_list(env, "LOGITKIT_PLUGINS")
    builtins_only = _env_flag(env, "LOGITKIT_DISABLE_PLUGIN_AUTOLOAD")
    chosen: list[PluginSource] = []
    skipped: list[str] = []
    for source in sources:
        if source.name in blocked:
            skipped.append(source.name)
        elif source.builtin or source.inline is not None:
            chosen.append(source)
        elif builtins_only or (allowed is not None and source.name not in allowed):
            skipped.append(source.name)
        else:
            chosen.append(source)
    return chosen, skipped


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("logitkit")
    pm.add_hookspecs(hookspecs)
    return pm


def import_plugin(pm: pluggy.PluginManager, source: PluginSource) -> ModuleType | object:
    """Import one plugin and register it with pluggy; raises on failure."""
    plugin = source.load()
    pm.register(plugin, name=source.name)
    return plugin
