"""Turning a dict, a file or a model into a validated, resolved pipeline config.

Validation runs in one pass and collects every problem; nothing is built
until the whole config is valid. Each processor validates its own fields with
its own pydantic ``Config``, so third-party processors are checked exactly
like built-ins.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import math
import os
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from logitkit.errors import ConfigError, Problem, short_repr
from logitkit.loading import read_config_file
from logitkit.processor import CheckContext, Processor, Selector, TokenSettings, walk_token_ids
from logitkit.registry import Registry
from logitkit.registry import registry as default_registry
from logitkit.settings import GenerationSettings
from logitkit.stages import coerce_stage

TOP_LEVEL_KEYS = ("order", "tokens", "processors", "selector", "preset", "generation", "on_empty_row")
#: What a row whose every token was masked gets: the top raw-logit token, or an error naming the stage.
EMPTY_ROW_POLICIES = ("top", "error")
BUILTIN_ORDERS = ("stage", "listed")


@dataclass(frozen=True)
class ProcessorSpec:
    """One validated processor entry."""

    name: str
    cls: type[Processor]
    config: BaseModel
    #: Index in the config as written (after preset merging).
    position: int
    #: ``stage:`` / ``priority:`` set on the entry, overriding the class's own (``cls`` is then placed there).
    placement: tuple[tuple[str, int], ...] = ()
    #: Where the entry is in the file the user wrote (a preset's own entries say so), for messages.
    path: str = ""


@dataclass(frozen=True)
class SelectorSpec:
    name: str
    cls: type[Selector]
    config: BaseModel


@dataclass(frozen=True)
class ResolvedConfig:
    """A valid config: processors in run order, the selector, tokens and generation settings."""

    source: str
    order: str
    tokens: TokenSettings
    processors: tuple[ProcessorSpec, ...]
    selector: SelectorSpec | None
    generation: GenerationSettings
    preset: str | None = None
    listed: tuple[ProcessorSpec, ...] = field(default=(), repr=False)
    #: The config's ``on_empty_row:`` (None: not set, the pipeline's default applies).
    on_empty_row: str | None = None


def allow_import_from_env() -> bool:
    return os.environ.get("LOGITKIT_ALLOW_IMPORT", "").strip().lower() in {"1", "true", "yes"}


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _not_loaded(reg: Registry) -> str:
    """Name the plugins that did not load: one of them may be the one that provides a missing name."""
    missing = [f"{name!r} (disabled)" for name in reg.skipped]
    missing += [f"{f.plugin!r} (failed: {f.error})" for f in reg.failures]
    return f"; plugins not loaded: {', '.join(missing)}" if missing else ""


def _loc(prefix: str, loc: tuple[Any, ...]) -> str:
    path = prefix
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _bounds_text(model: type[BaseModel], field_name: Any) -> str | None:
    info = model.model_fields.get(field_name) if isinstance(field_name, str) else None
    if info is None:
        return None
    parts = []
    for meta in info.metadata:
        for attr, sym in (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")):
            bound = getattr(meta, attr, None)
            if bound is not None:
                parts.append(f"{sym} {bound}")
    return " and ".join(parts) if parts else None


RANGE_ERRORS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _reason(err: Any, model: type[BaseModel], valid_fields: Iterable[str]) -> str:
    kind = err["type"]
    loc = err["loc"]
    got = err.get("input")
    if kind in RANGE_ERRORS:
        bounds = _bounds_text(model, loc[0]) if len(loc) == 1 else None
        if bounds is None:
            ctx = err.get("ctx", {})
            bounds = " and ".join(f"{RANGE_ERRORS[kind]} {v}" for v in ctx.values())
        return f"must be {bounds} (got {short_repr(got)})"
    if kind == "finite_number" or (isinstance(got, float) and not math.isfinite(got)):
        return f"must be a finite number (got {short_repr(got)})"
    if kind == "extra_forbidden":
        return f"unknown field{_suggest(str(loc[-1]), valid_fields)}"
    if kind == "missing":
        return "is required"
    if kind == "value_error":
        message = str(err["msg"]).removeprefix("Value error, ")
        return message if "(got " in message or "input" not in err else f"{message} (got {short_repr(got)})"
    return f"{err['msg'][0].lower()}{err['msg'][1:]} (got {short_repr(got)})" if "input" in err else str(err["msg"])


def validation_problems(
    exc: ValidationError, model: type[BaseModel], source: str, prefix: str
) -> list[Problem]:
    """One ``Problem`` per pydantic error, with logitkit's path and range wording."""
    fields = list(model.model_fields)
    return [Problem(source, _loc(prefix, tuple(err["loc"])), _reason(err, model, fields)) for err in exc.errors()]


def _import_class(path: str) -> type:
    module_name, _, attr = path.partition(":")
    module = importlib.import_module(module_name)
    obj: type = getattr(module, attr)
    return obj


class _Resolver:
    def __init__(self, reg: Registry, source: str, allow_import: bool) -> None:
        self.reg = reg
        self.source = source
        self.allow_import = allow_import
        self.problems: list[Problem] = []
        #: Per merged processor entry, its path in what the user wrote (set when a preset is merged).
        self.entry_paths: list[str] | None = None

    def entry_path(self, index: int) -> str:
        return self.entry_paths[index] if self.entry_paths is not None else f"processors[{index}]"

    def problem(self, path: str, reason: str) -> None:
        self.problems.append(Problem(self.source, path, reason))

    # -- sections ---------------------------------------------------------------

    def top_level(self, data: Any) -> dict[str, Any] | None:
        if isinstance(data, list):
            return {"processors": data}
        if data is None:  # a YAML file holding only comments
            self.problem("", "no config in the file (only comments or blank lines)")
            return None
        if not isinstance(data, dict):
            self.problem("", f"a config must be a mapping or a list of processors, not {type(data).__name__}")
            return None
        for key in data:
            if key not in TOP_LEVEL_KEYS:
                self.problem(str(key), f"unknown section{self.section_hint(str(key))}")
        return data

    def section_hint(self, key: str) -> str:
        """Where a misplaced top-level key belongs, before a spelling guess (max_new_tokens is not 'tokens')."""
        if key in self.reg.processors:
            return "; processors go in the 'processors:' list"
        if key in GenerationSettings.model_fields:
            return f"; {key!r} belongs in the 'generation:' section"
        if key in TokenSettings.model_fields:
            return f"; {key!r} belongs in the 'tokens:' section"
        if key in self.reg.selectors:
            return f"; a selector is set with 'selector: {key}'"
        return _suggest(key, TOP_LEVEL_KEYS)

    def merge_preset(self, data: dict[str, Any]) -> dict[str, Any]:
        name = data.get("preset")
        if name is None:
            return data
        if not isinstance(name, str) or name not in self.reg.config_presets:
            hint = _suggest(str(name), self.reg.config_presets)
            self.problem("preset", f"unknown preset {name!r}{hint}")
            return data
        base = self.reg.config_presets[name].value
        base = {"processors": base} if isinstance(base, list) else dict(base)
        merged = {**base, **{k: v for k, v in data.items() if k != "processors"}}
        processors, self.entry_paths = _merge_processors(name, base.get("processors", []), data.get("processors", []), self.reg)
        merged["processors"] = processors
        return merged

    def entry(self, index: int, raw: Any, path: str) -> ProcessorSpec | None:
        name, fields = self.split_entry(path, raw)
        if name is None:
            return None
        cls = self.lookup_processor(path, name)
        if cls is None:
            return None
        if cls.code_only:
            self.problem(path, f"processor {name!r} takes a Python callable; build it in code, not from a config file")
            return None
        fields = self.expand_shorthand(cls, fields, path)
        if fields is None:
            return None
        placement = self.placement(cls, fields, path)
        if placement is None:
            return None
        try:
            config = cls.Config.model_validate(fields)
        except ValidationError as exc:
            self.problems.extend(validation_problems(exc, cls.Config, self.source, path))
            return None
        except Exception as exc:  # a validator raising what pydantic does not wrap (TypeError, ...)
            self.problem(path, f"invalid config for {name!r}: {type(exc).__name__}: {exc}")
            return None
        placed = placed_class(cls, placement) if placement else cls
        return ProcessorSpec(cls.name, placed, config, index, placement, path)

    def placement(self, cls: type[Processor], fields: dict[str, Any], path: str) -> tuple[tuple[str, int], ...] | None:
        """Pop ``stage:`` and ``priority:`` from an entry (unless the processor has such fields)."""
        out: list[tuple[str, int]] = []
        for key in ("stage", "priority"):
            if key not in fields or key in cls.Config.model_fields:
                continue
            value = fields.pop(key)
            if key == "stage":
                try:
                    out.append((key, coerce_stage(value)))
                except ValueError as exc:
                    self.problem(f"{path}.stage", str(exc))
                    return None
            elif isinstance(value, int) and not isinstance(value, bool):
                out.append((key, value))
            else:
                self.problem(f"{path}.priority", f"must be an integer (got {value!r})")
                return None
        return tuple(out)

    def split_entry(self, path: str, raw: Any) -> tuple[str | None, Any]:
        if isinstance(raw, str):
            return raw, {}
        if not isinstance(raw, dict) or not raw:
            self.problem(path, f"a processor entry must be a name or a mapping, not {type(raw).__name__}")
            return None, None
        if "name" in raw:
            fields = {k: v for k, v in raw.items() if k != "name"}
            if not isinstance(raw["name"], str):
                self.problem(f"{path}.name", f"must be a string (got {raw['name']!r})")
                return None, None
            return raw["name"], fields
        if len(raw) == 1:
            ((name, value),) = raw.items()
            return str(name), ("__shorthand__", value)
        self.problem(path, "a processor mapping needs a 'name' key, or exactly one key (the shorthand '- top_p: 0.9')")
        return None, None

    def lookup_processor(self, path: str, name: str) -> type[Processor] | None:
        if name in self.reg.processors:
            cls: type[Processor] = self.reg.processors[name].cls
            return cls
        if ":" in name:
            if not self.allow_import:
                self.problem(f"{path}.name", f"import path {name!r} refused; set LOGITKIT_ALLOW_IMPORT=1 or pass allow_import=True to allow it")
                return None
            try:
                imported = _import_class(name)
            except Exception as exc:
                self.problem(f"{path}.name", f"cannot import {name!r}: {type(exc).__name__}: {exc}")
                return None
            if not (isinstance(imported, type) and issubclass(imported, Processor)):
                self.problem(f"{path}.name", f"{name!r} is not a logitkit Processor")
                return None
            return imported
        self.problem(f"{path}.name", f"unknown processor {name!r}{_suggest(name, self.reg.processors)}{_not_loaded(self.reg)}")
        return None

    def expand_shorthand(self, cls: type[Processor], fields: Any, path: str) -> dict[str, Any] | None:
        if not (isinstance(fields, tuple) and fields and fields[0] == "__shorthand__"):
            return dict(fields)
        value = fields[1]
        model_fields = cls.Config.model_fields
        primary = cls.primary or (cls.name if cls.name in model_fields else None)
        if isinstance(value, dict):
            # '- forced_decoder_ids: {1: 50259}' sets a dict-valued primary field; '- top_p: {top_p: 0.9}' lists fields.
            if primary is not None and _takes_mapping(model_fields[primary].annotation) and not set(value) <= set(model_fields):
                return {primary: value}
            return value
        if primary is None:
            if value is True or value is None:
                return {}
            self.problem(f"{path}.{cls.name}", f"{cls.name!r} takes no value; write it as '- {cls.name}' or '- {cls.name}: true'")
            return None
        return {primary: value}

    def selector(self, raw: Any) -> SelectorSpec | None:
        if raw is None:
            return None
        if isinstance(raw, str):
            name, fields = raw, {}
        elif isinstance(raw, dict) and isinstance(raw.get("name"), str):
            name, fields = raw["name"], {k: v for k, v in raw.items() if k != "name"}
        elif isinstance(raw, dict) and len(raw) == 1 and str(next(iter(raw))) in self.reg.selectors:
            shorthand = self.selector_shorthand(raw)
            if shorthand is None:
                return None
            name, fields = shorthand
        else:
            self.problem("selector", "must be a selector name, a mapping with 'name', or the shorthand '{sample: 42}'")
            return None
        entry = self.reg.selectors.get(name)
        if entry is None:
            self.problem("selector.name" if isinstance(raw, dict) else "selector", f"unknown selector {name!r}{_suggest(name, self.reg.selectors)}")
            return None
        try:
            config = entry.cls.Config.model_validate(fields)
        except ValidationError as exc:
            self.problems.extend(validation_problems(exc, entry.cls.Config, self.source, "selector"))
            return None
        except Exception as exc:  # a validator raising what pydantic does not wrap
            self.problem("selector", f"invalid config for {name!r}: {type(exc).__name__}: {exc}")
            return None
        return SelectorSpec(name, entry.cls, config)

    def selector_shorthand(self, raw: dict[Any, Any]) -> tuple[str, dict[str, Any]] | None:
        """``{sample: 42}`` sets the selector's primary field; ``{mirostat: {tau: 3}}`` lists fields."""
        ((key, value),) = raw.items()
        name = str(key)
        cls = self.reg.selectors[name].cls
        if isinstance(value, dict):
            return name, dict(value)
        if value is True or value is None:
            return name, {}
        if cls.primary is None:
            self.problem(f"selector.{name}", f"selector {name!r} has no primary field; write 'selector: {name}' or list its fields")
            return None
        return name, {cls.primary: value}

    def search_options(self, search: str | None, options: dict[str, Any]) -> None:
        """A strategy's options must fit the ``Config`` model it declares."""
        if search is None:
            self.problem("generation.search_options", "set generation.search to the strategy these options are for")
            return
        model = getattr(self.reg.search_strategies[search].value, "Config", None)
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            self.problem("generation.search_options", f"search strategy {search!r} takes no options (it declares no Config)")
            return
        try:
            model.model_validate(options)
        except ValidationError as exc:
            self.problems.extend(validation_problems(exc, model, self.source, "generation.search_options"))

    def model_section(self, data: dict[str, Any], key: str, model: type[BaseModel]) -> Any:
        raw = data.get(key) or {}
        if not isinstance(raw, dict):
            self.problem(key, f"must be a mapping, not {type(raw).__name__}")
            return model()
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            self.problems.extend(validation_problems(exc, model, self.source, key))
            return model()

    def order(self, value: Any) -> str:
        if value is None:
            return "stage"
        known = (*BUILTIN_ORDERS, *self.reg.order_presets)
        if not isinstance(value, str) or value not in known:
            self.problem("order", f"unknown order {value!r}{_suggest(str(value), known)}; known: {', '.join(known)}")
            return "stage"
        return value


_PLACED: dict[tuple[int, tuple[tuple[str, int], ...]], tuple[type[Processor], type[Processor]]] = {}


def placed_class(cls: type[Processor], placement: tuple[tuple[str, int], ...]) -> type[Processor]:
    """``cls`` at another stage or priority: a subclass, so everything that reads ``cls.stage`` sees the move.

    One subclass per (class, placement), so two configs with the same placement share it.
    """
    key = (id(cls), placement)
    if key not in _PLACED:  # the value keeps ``cls`` alive, so its id is never reused
        attrs = {**dict(placement), "__module__": cls.__module__, "__qualname__": cls.__qualname__}
        _PLACED[key] = (cls, type(cls.__name__, (cls,), attrs))
    return _PLACED[key][1]


def _takes_mapping(annotation: Any) -> bool:
    """True when a field's type is a dict (or a union holding one)."""
    origin = typing.get_origin(annotation)
    if annotation is dict or origin is dict:
        return True
    return origin in (typing.Union, types.UnionType) and any(_takes_mapping(a) for a in typing.get_args(annotation))


def vocab_problems(specs: Iterable[ProcessorSpec], tokens: TokenSettings) -> list[tuple[str, str]]:
    """``(path, reason)`` for every token id at or past ``tokens.vocab_size`` (none when it is not set)."""
    vocab = tokens.vocab_size
    if vocab is None:
        return []
    found: list[tuple[str, int]] = []
    for name in ("eos", "bos", "pad", "decoder_start"):
        found.extend((f"tokens.{path}", token) for path, token in walk_token_ids(name, getattr(tokens, name)))
    for spec in specs:
        found.extend((f"{spec.path}.{path}", token) for path, token in spec.cls.token_ids(spec.config))
    return [
        (path, f"token id {token} is outside the vocabulary (tokens.vocab_size = {vocab})")
        for path, token in found
        if token >= vocab
    ]


def flag_switched_off(raw: Any, reg: Registry) -> bool:
    """``- name: false`` for a processor without a value (a flag): it switches the processor off.

    For a processor that takes a value (``- temperature: false``) it is not skipped:
    validation then reports the boolean where a number goes.
    """
    if not (isinstance(raw, dict) and len(raw) == 1 and next(iter(raw.values())) is False):
        return False
    entry = reg.processors.get(str(next(iter(raw))))
    if entry is None:
        return False
    cls = entry.cls
    return (cls.primary or (cls.name if cls.name in cls.Config.model_fields else None)) is None


def _completed(spec: ProcessorSpec, context: CheckContext, r: _Resolver) -> ProcessorSpec:
    """``spec`` with its config completed from the rest of the config (``Processor.complete``)."""
    try:
        config = spec.cls.complete(spec.config, context)
    except Exception as exc:  # a plugin's complete must not crash validation
        r.problem(spec.path, f"complete failed in {spec.name!r}: {type(exc).__name__}: {exc}")
        return spec
    return spec if config is spec.config else dataclasses.replace(spec, config=config)


def forced_suppressed_conflicts(ordered: Iterable[ProcessorSpec]) -> list[tuple[str, str]]:
    """A token forced and then suppressed leaves its row empty; suppressed and then forced, the force wins.

    transformers runs ``forced_decoder_ids`` after ``suppress_tokens``, so a
    Whisper config that forces a suppressed task token is valid there and here.
    """
    forced: dict[int, ProcessorSpec] = {}
    problems = []
    for spec in ordered:
        try:
            for token in sorted(spec.cls.suppressed_tokens(spec.config)):
                if token in forced:
                    reason = f"token {token} is forced by {forced[token].name!r} and then suppressed by {spec.name!r}, which empties the row"
                    problems.append((spec.path, reason))
            forced.update(dict.fromkeys(spec.cls.forced_tokens(spec.config), spec))
        except Exception as exc:  # a plugin's token hooks must not crash validation
            problems.append((spec.path, f"check failed in {spec.name!r}: {type(exc).__name__}: {exc}"))
    return problems


def _entry_name(raw: Any) -> str | None:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        if isinstance(raw.get("name"), str):
            return str(raw["name"])
        if len(raw) == 1:
            return str(next(iter(raw)))
    return None


def _merge_processors(preset: str, base: list[Any], override: Any, reg: Registry) -> tuple[Any, list[str] | None]:
    """A preset's processors, with same-named entries from the user's config merged over them.

    ``- top_k: false`` removes the preset's top_k. Also returns each merged entry's
    path in what the user wrote: ``processors[i]`` for the user's own entries (merged
    or added), ``preset <name> processors[i]`` for the preset's untouched ones.
    """
    if not isinstance(override, list):
        return override, None  # reported later as a type problem
    merged = list(base)
    paths = [f"preset {preset} processors[{i}]" for i in range(len(base))]
    removed: list[int] = []
    for index, raw in enumerate(override):
        name = _entry_name(raw)
        slot = next((i for i, b in enumerate(merged) if name is not None and _entry_name(b) == name), None)
        if slot is None:
            merged.append(raw)
            paths.append(f"processors[{index}]")
        elif _is_off(raw):
            removed.append(slot)
        else:
            merged[slot] = {"name": name, **_as_fields(merged[slot], reg), **_as_fields(raw, reg)}
            paths[slot] = f"processors[{index}]"
    keep = [i for i in range(len(merged)) if i not in removed]
    return [merged[i] for i in keep], [paths[i] for i in keep]


def _is_off(raw: Any) -> bool:
    """``- name: false``: the entry switches the processor off."""
    return isinstance(raw, dict) and len(raw) == 1 and next(iter(raw.values())) is False


def _as_fields(raw: Any, reg: Registry) -> dict[str, Any]:
    name = _entry_name(raw)
    if isinstance(raw, str) or not isinstance(raw, dict):
        return {}
    if "name" in raw:
        return {k: v for k, v in raw.items() if k != "name"}
    # A one-key entry; its key may be a YAML int (``- 0: null``) while the name is its text.
    value = next(iter(raw.values()))
    if isinstance(value, dict):
        return dict(value)
    entry = reg.processors.get(name or "")
    if entry is None:
        return {str(name): value}
    cls = entry.cls
    primary = cls.primary or (cls.name if cls.name in cls.Config.model_fields else None)
    return {primary: value} if primary else {}


def sort_specs(specs: list[ProcessorSpec], order: str, reg: Registry) -> list[ProcessorSpec]:
    """Put processors in run order: by (stage, priority), as written, or by a named preset."""
    if order == "listed":
        return list(specs)
    by_stage = sorted(specs, key=lambda s: (int(s.cls.stage), s.cls.priority, s.position))
    if order == "stage":
        return by_stage
    preset = reg.order_presets[order].value
    ordered_classes = preset([s.cls for s in by_stage])
    position = {id(cls): i for i, cls in enumerate(ordered_classes)}
    return sorted(by_stage, key=lambda s: position.get(id(s.cls), len(position)))


def resolve(
    obj: Any,
    *,
    registry: Registry | None = None,
    source: str | None = None,
    allow_import: bool | None = None,
) -> ResolvedConfig:
    """Validate ``obj`` (dict, list, path or ``ResolvedConfig``) and resolve it; raises ``ConfigError``."""
    if isinstance(obj, ResolvedConfig):
        return obj
    reg = registry if registry is not None else default_registry()
    if isinstance(obj, (str, Path)):
        source = source or str(obj)
        data = read_config_file(obj)
    else:
        data = obj
    source = source or "<config>"
    allow = allow_import_from_env() if allow_import is None else allow_import
    r = _Resolver(reg, source, allow)

    top = r.top_level(data)
    if top is None:
        raise ConfigError(r.problems)
    top = r.merge_preset(top)
    tokens = r.model_section(top, "tokens", TokenSettings)
    generation = r.model_section(top, "generation", GenerationSettings)

    raw_processors = top.get("processors") or []
    specs: list[ProcessorSpec] = []
    if not isinstance(raw_processors, list):
        r.problem("processors", f"must be a list, not {type(raw_processors).__name__}")
    else:
        first_path: dict[str, str] = {}
        for i, raw in enumerate(raw_processors):
            if flag_switched_off(raw, reg):
                continue  # '- remove_invalid_values: false' switches a flag processor off
            spec = r.entry(i, raw, r.entry_path(i))
            if spec is None:
                continue
            if spec.name in first_path:
                r.problem(spec.path, f"duplicate processor {spec.name!r} (also at {first_path[spec.name]})")
                continue
            first_path[spec.name] = spec.path
            specs.append(spec)

    selector = r.selector(top.get("selector"))
    order = r.order(top.get("order"))
    preset = top.get("preset") if isinstance(top.get("preset"), str) else None
    on_empty_row = top.get("on_empty_row")
    if on_empty_row is not None and on_empty_row not in EMPTY_ROW_POLICIES:
        r.problem("on_empty_row", f"must be one of {', '.join(EMPTY_ROW_POLICIES)}, not {on_empty_row!r}")
        on_empty_row = None

    check_ctx = CheckContext(tokens=tokens, generation=generation, processors=tuple(s.name for s in specs))
    specs = [_completed(spec, check_ctx, r) for spec in specs]
    for spec in specs:
        path = spec.path
        try:
            for reason in spec.cls.check(spec.config, check_ctx):
                r.problem(path, reason)
        except Exception as exc:  # a plugin's check must not crash validation
            r.problem(path, f"check failed in {spec.name!r}: {type(exc).__name__}: {exc}")
    try:
        for path, reason in vocab_problems(specs, tokens):
            r.problem(path, reason)
    except Exception as exc:  # a plugin's token_ids must not crash validation
        r.problem("processors", f"token id check failed: {type(exc).__name__}: {exc}")
    search = generation.search
    if search is not None and search not in reg.search_strategies:
        known = ", ".join(sorted(reg.search_strategies)) or "none"
        r.problem("generation.search", f"unknown search strategy {search!r}{_suggest(search, reg.search_strategies)}; known: {known}")
    elif generation.search_options:
        r.search_options(search, generation.search_options)

    if r.problems:
        raise ConfigError(r.problems)
    try:
        ordered = sort_specs(specs, order, reg)
    except Exception as exc:  # a plugin's order preset must not crash validation
        raise ConfigError([Problem(source, "order", f"order {order!r} failed: {type(exc).__name__}: {exc}")]) from None
    for path, reason in forced_suppressed_conflicts(ordered):
        r.problem(path, reason)
    if r.problems:
        raise ConfigError(r.problems)
    return ResolvedConfig(source, order, tokens, tuple(ordered), selector, generation, preset, tuple(specs), on_empty_row)


def problems_of(obj: Any, **kwargs: Any) -> list[Problem]:
    """Every problem in a config, or an empty list when it is valid."""
    try:
        resolve(obj, **kwargs)
    except ConfigError as exc:
        return list(exc.problems)
    return []

