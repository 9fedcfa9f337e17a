"""The registry: every processor, selector and preset the loaded plugins provide."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy
from pydantic import BaseModel

from logitkit import plugins as plugin_loading
from logitkit.plugins import PluginSource
from logitkit.processor import Processor, ProcessorConfig, Selector, summary_of
from logitkit.stages import coerce_stage
from logitkit.stopping import FINISH_REASONS, StoppingCriterion

log = logging.getLogger("logitkit.registry")

#: An order preset: the processor classes in stage order in, the preset's order out.
OrderFunction = Callable[[list[type[Processor]]], list[type[Processor]]]

#: Hooks whose ``register`` callback takes a class with a ``name``.
CLASS_HOOKS = ("register_processors", "register_selectors", "register_stopping_criteria")


@dataclass(frozen=True)
class Entry:
    """One registered class (processor, selector or stopping criterion)."""

    name: str
    cls: type[Any]
    plugin: str
    version: str
    #: The plugin whose entry this one replaced with ``replace=True``, if any.
    replaced: str | None = None

    @property
    def stage(self) -> int:
        return int(getattr(self.cls, "stage", 0))

    @property
    def config_model(self) -> type[BaseModel]:
        model: type[BaseModel] = self.cls.Config
        return model

    @property
    def summary(self) -> str:
        return summary_of(self.cls)


@dataclass(frozen=True)
class NamedEntry:
    """A named object from a plugin: an order preset, a config preset or a search strategy."""

    name: str
    value: Any
    plugin: str
    description: str = ""
    replaced: str | None = None


@dataclass(frozen=True)
class PluginFailure:
    plugin: str
    phase: str  # "import" or the hook name
    error: str

    def line(self) -> str:
        return f"logitkit: plugin {self.plugin!r} failed to load ({self.phase}): {self.error}"


@dataclass
class PluginInfo:
    name: str
    version: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)


class RegistrationError(ValueError):
    """A plugin registered something that breaks the contract."""


@dataclass
class Registry:
    processors: dict[str, Entry] = field(default_factory=dict)
    selectors: dict[str, Entry] = field(default_factory=dict)
    stopping_criteria: dict[str, Entry] = field(default_factory=dict)
    order_presets: dict[str, NamedEntry] = field(default_factory=dict)
    config_presets: dict[str, NamedEntry] = field(default_factory=dict)
    search_strategies: dict[str, NamedEntry] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    failures: list[PluginFailure] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    plugin_manager: pluggy.PluginManager | None = None

    def __contains__(self, name: object) -> bool:
        return name in self.processors

    def __iter__(self) -> Any:
        return iter(self.processors.values())


# -- validation of what plugins register ------------------------------------------------


def _check_class(obj: object, base: type, kind: str) -> type:
    if not isinstance(obj, type) or not issubclass(obj, base):
        raise RegistrationError(f"{kind} must be a subclass of logitkit.{base.__name__}, got {obj!r}")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise RegistrationError(f"{obj.__name__}.name must be an identifier string, got {name!r}")
    config = getattr(obj, "Config", None)
    if not isinstance(config, type) or not issubclass(config, BaseModel):
        raise RegistrationError(f"{obj.__name__}.Config must be a pydantic model class, got {config!r}")
    if not issubclass(config, ProcessorConfig):
        # A plain BaseModel ignores unknown fields and takes NaN and "0.7", against docs/config.md.
        raise RegistrationError(
            f"{obj.__name__}.Config must subclass logitkit.ProcessorConfig (unknown fields, NaN and "
            f"non-numbers refused), got {config.__name__} based on {config.__mro__[1].__name__}"
        )
    primary = getattr(obj, "primary", None)
    if primary is not None and primary not in config.model_fields:
        raise RegistrationError(
            f"{obj.__name__}.primary is {primary!r}, which is not a field of {config.__name__} "
            f"(fields: {', '.join(config.model_fields) or 'none'})"
        )
    try:
        coerce_stage(getattr(obj, "stage", None))
    except ValueError as exc:
        raise RegistrationError(f"{obj.__name__}.stage: {exc}") from None
    if not isinstance(getattr(obj, "priority", 0), int):
        raise RegistrationError(f"{obj.__name__}.priority must be an int")
    return obj


class _Staging:
    """Collects one plugin's registrations so a failing plugin leaves nothing behind."""

    def __init__(self, registry: Registry, plugin: str, version: str) -> None:
        self.registry = registry
        self.plugin = plugin
        self.version = version
        self.classes: dict[str, dict[str, Entry]] = {hook: {} for hook in CLASS_HOOKS}
        self.named: dict[str, dict[str, NamedEntry]] = {
            "register_order_presets": {},
            "register_config_presets": {},
            "register_search_strategies": {},
        }

    def _target(self, hook: str) -> dict[str, Any]:
        targets: dict[str, dict[str, Any]] = {
            "register_processors": self.registry.processors,
            "register_selectors": self.registry.selectors,
            "register_stopping_criteria": self.registry.stopping_criteria,
            "register_order_presets": self.registry.order_presets,
            "register_config_presets": self.registry.config_presets,
            "register_search_strategies": self.registry.search_strategies,
        }
        return targets[hook]

    def _clash(self, hook: str, name: str, replace: bool) -> str | None:
        existing = self._target(hook).get(name)
        staged = self.classes.get(hook, {}).get(name) or self.named.get(hook, {}).get(name)
        if staged is not None:
            raise RegistrationError(f"{name!r} is registered twice by plugin {self.plugin!r}")
        if existing is None:
            return None
        if not replace:
            kind = hook.removeprefix("register_").rstrip("s")
            raise RegistrationError(
                f"{kind} {name!r} from plugin {self.plugin!r} clashes with the one from plugin "
                f"{existing.plugin!r}; pass replace=True to override it on purpose"
            )
        return str(existing.plugin)

    def class_callback(self, hook: str) -> Callable[..., None]:
        base: type = Selector if hook == "register_selectors" else Processor
        kind = hook.removeprefix("register_").rstrip("s")

        def register(cls: type, *, replace: bool = False) -> None:
            if hook == "register_stopping_criteria":
                if not isinstance(cls, type) or not issubclass(cls, StoppingCriterion):
                    raise RegistrationError(
                        f"{kind} must be a subclass of logitkit.stopping.StoppingCriterion, got {cls!r}"
                    )
                if not isinstance(getattr(cls, "name", None), str):
                    raise RegistrationError(f"{cls.__name__}.name must be a string")
                reason = getattr(cls, "reason", None)
                if reason not in FINISH_REASONS[1:]:
                    raise RegistrationError(
                        f"{cls.__name__}.reason is {reason!r}; a finish reason is one of {', '.join(FINISH_REASONS[1:])}"
                    )
            else:
                _check_class(cls, base, kind)
            name = cls.name  # type: ignore[attr-defined]
            replaced = self._clash(hook, name, replace)
            self.classes[hook][name] = Entry(name, cls, self.plugin, self.version, replaced)

        return register

    def named_callback(self, hook: str) -> Callable[..., None]:
        def register(name: str, value: Any, description: str = "", *, replace: bool = False) -> None:
            if not isinstance(name, str) or not name:
                raise RegistrationError(f"a name must be a non-empty string, got {name!r}")
            if hook == "register_order_presets" and not callable(value):
                raise RegistrationError(f"order preset {name!r} must be callable")
            if hook == "register_search_strategies" and not callable(value):
                raise RegistrationError(f"search strategy {name!r} must be callable: strategy(job) -> GenerationOutput")
            if hook == "register_config_presets" and not isinstance(value, (dict, list)):
                raise RegistrationError(f"config preset {name!r} must be a dict or list")
            replaced = self._clash(hook, name, replace)
            self.named[hook][name] = NamedEntry(name, value, self.plugin, description, replaced)

        return register

    def callback(self, hook: str) -> Callable[..., None]:
        return self.class_callback(hook) if hook in self.classes else self.named_callback(hook)

    def commit(self) -> list[str]:
        names: list[str] = []
        for hook, entries in self.classes.items():
            self._target(hook).update(entries)
            names.extend(entries)
        for hook, named in self.named.items():
            self._target(hook).update(named)
            names.extend(named)
        return names


def _origin(source: PluginSource) -> str:
    """Where a plugin comes from, for messages: its entry point's target and distribution, or 'inline'."""
    if source.entry_point is None:
        return "inline"
    dist = getattr(source.entry_point, "dist", None)
    where = f" from {dist.metadata['Name']} {dist.version}" if dist is not None else ""
    return f"{source.entry_point.value}{where}"


def _fail(registry: Registry, failure: PluginFailure, strict: bool) -> None:
    registry.failures.append(failure)
    if not strict:  # strict mode reports every failure once, in the error raised after loading
        log.warning(failure.line())


def build_registry(
    sources: Iterable[plugin_loading.PluginSource] | None = None,
    *,
    inline: Mapping[str, object] | None = None,
    env: Mapping[str, str] | None = None,
) -> Registry:
    """Load plugins into a fresh plugin manager and collect what they register.

    ``sources`` defaults to the installed entry points; ``inline`` adds plugin
    objects by name after them (as tox registers inline plugins last).
    """
    env = os.environ if env is None else env
    strict = plugin_loading.strict_mode(env)
    all_sources = list(plugin_loading.discover(env) if sources is None else sources)
    for name, obj in (inline or {}).items():
        all_sources.append(plugin_loading.PluginSource(name, "inline", False, inline=obj))
    chosen, skipped = plugin_loading.select_sources(all_sources, env)

    pm = plugin_loading.new_plugin_manager()
    registry = Registry(skipped=skipped, plugin_manager=pm)
    if not any(s.builtin for s in all_sources) and sources is None:
        log.warning("logitkit: the built-in plugin was not found; is logitkit installed (pip install -e .)?")

    seen: dict[str, PluginSource] = {}
    for source in chosen:
        first = seen.get(source.name)
        if first is not None:
            clash = f"another plugin already uses this name ({_origin(first)}); {_origin(source)} was not loaded"
            _fail(registry, PluginFailure(source.name, "import", clash), strict)
            continue
        seen[source.name] = source
        try:
            plugin = plugin_loading.import_plugin(pm, source)
        except (Exception, SystemExit) as exc:  # a broken plugin must not break the others, sys.exit included
            _fail(registry, PluginFailure(source.name, "import", f"{type(exc).__name__}: {exc}"), strict)
            continue
        staging = _Staging(registry, source.name, source.version)
        info = PluginInfo(source.name, source.version, source.builtin)
        failed = False
        for hook in (*CLASS_HOOKS, "register_order_presets", "register_config_presets", "register_search_strategies"):
            impls = [i for i in getattr(pm.hook, hook).get_hookimpls() if i.plugin is plugin]
            if not impls:
                continue
            info.hooks.append(hook)
            try:
                for impl in impls:
                    impl.function(register=staging.callback(hook))
            except (Exception, SystemExit) as exc:
                failed = True
                pm.unregister(plugin)
                _fail(registry, PluginFailure(source.name, hook, f"{type(exc).__name__}: {exc}"), strict)
                break
        if failed:
            continue
        info.registered = staging.commit()
        registry.plugins.append(info)
    pm.check_pending()
    if strict and registry.failures:
        raise plugin_loading.PluginLoadError(
            "\n".join(f.line() for f in registry.failures) + "\n(LOGITKIT_STRICT_PLUGINS is set: a failing plugin is fatal)"
        )
    return registry


_current: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, loaded on first use."""
    global _current
    if _current is None:
        _current = build_registry()
    return _current


def set_registry(new: Registry | None) -> None:
    """Replace (or with ``None``, forget) the process-wide registry; tests use this."""
    global _current
    _current = new
