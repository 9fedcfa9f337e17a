"""Turning a dict, a file or a model into a validated, resolved pipeline config.

Validation runs in one pass and collects every problem; nothing is built
until the whole config is valid. Each processor validates its own fields with
its own pydantic ``Config``, so third-party processors are checked exactly
like built-ins.
"""

from __future__ import annotations

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

TOP_LEVEL_KEYS = ("order", "tokens", "processors", "selector", "preset", "generation", "on_empty_row")

#: What happens when the processors remove every token of a row (``on_empty_row:``).
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
    #: The config's ``on_empty_row:`` policy; None when it sets none.
    on_empty_row: str | None = None


def allow_import_from_env() -> bool:
    return os.environ.get("LOGITKIT_ALLOW_IMPORT", "").strip().lower() in {"1", "true", "yes"}


def _suggest(name: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


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
                hint = _suggest(str(key), TOP_LEVEL_KEYS)
                if not hint and key in self.reg.processors:
                    hint = "; processors go in the 'processors:' list"
                self.problem(str(key), f"unknown section{hint}")
        return data

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
        merged["processors"] = _merge_processors(base.get("processors", []), data.get("processors", []), self.reg)
        return merged

    def entry(self, index: int, raw: Any) -> ProcessorSpec | None:
        path = f"processors[{index}]"
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
        try:
            config = cls.Config.model_validate(fields)
        except ValidationError as exc:
            self.problems.extend(validation_problems(exc, cls.Config, self.source, path))
            return None
        except Exception as exc:  # a validator raising what pydantic does not wrap (TypeError, ...)
            self.problem(path, f"invalid config for {name!r}: {type(exc).__name__}: {exc}")
            return None
        return ProcessorSpec(cls.name, cls, config, index)

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
        self.problem(f"{path}.name", f"unknown processor {name!r}{_suggest(name, self.reg.processors)}")
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
        else:
            self.problem("selector", "must be a selector name or a mapping with 'name'")
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
        found.extend((f"processors[{spec.position}].{path}", token) for path, token in spec.cls.token_ids(spec.config))
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


def _entry_name(raw: Any) -> str | None:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        if isinstance(raw.get("name"), str):
            return str(raw["name"])
        if len(raw) == 1:
            return str(next(iter(raw)))
    return None


def _merge_processors(base: list[Any], override: Any, reg: Registry) -> list[Any]:
    """A preset's processors, with same-named entries from the user's config merged over them."""
    if not isinstance(override, list):
        return override  # type: ignore[no-any-return]  # reported later as a type problem
    merged = list(base)
    for raw in override:
        name = _entry_name(raw)
        slot = next((i for i, b in enumerate(merged) if name is not None and _entry_name(b) == name), None)
        if slot is None:
            merged.append(raw)
        else:
            merged[slot] = {"name": name, **_as_fields(merged[slot], reg), **_as_fields(raw, reg)}
    return merged


def _as_fields(raw: Any, reg: Registry) -> dict[str, Any]:
    name = _entry_name(raw)
    if isinstance(raw, str) or not isinstance(raw, dict):
        return {}
    if "name" in raw:
        return {k: v for k, v in raw.items() if k != "name"}
    value = raw[name]
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
        first_seen: dict[str, int] = {}
        for i, raw in enumerate(raw_processors):
            if flag_switched_off(raw, reg):
                continue  # '- remove_invalid_values: false' switches a flag processor off
            spec = r.entry(i, raw)
            if spec is None:
                continue
            if spec.name in first_seen:
                r.problem(f"processors[{i}]", f"duplicate processor {spec.name!r} (also at processors[{first_seen[spec.name]}])")
                continue
            first_seen[spec.name] = i
            specs.append(spec)

    selector = r.selector(top.get("selector"))
    order = r.order(top.get("order"))
    preset = top.get("preset") if isinstance(top.get("preset"), str) else None
    on_empty_row = top.get("on_empty_row")
    if on_empty_row is not None and on_empty_row not in EMPTY_ROW_POLICIES:
        r.problem("on_empty_row", f"must be one of {', '.join(EMPTY_ROW_POLICIES)}, not {on_empty_row!r}")
        on_empty_row = None

    check_ctx = CheckContext(tokens=tokens, generation=generation, processors=tuple(s.name for s in specs))
    forced: dict[int, str] = {}
    suppressed: dict[int, str] = {}
    for spec in specs:
        path = f"processors[{spec.position}]"
        try:
            for reason in spec.cls.check(spec.config, check_ctx):
                r.problem(path, reason)
            forced.update(dict.fromkeys(spec.cls.forced_tokens(spec.config), spec.name))
            suppressed.update(dict.fromkeys(spec.cls.suppressed_tokens(spec.config), spec.name))
        except Exception as exc:  # a plugin's check must not crash validation
            r.problem(path, f"check failed in {spec.name!r}: {type(exc).__name__}: {exc}")
    for token in sorted(set(forced) & set(suppressed)):
        r.problem("processors", f"token {token} is forced by {forced[token]!r} and suppressed by {suppressed[token]!r}")
    try:
        for path, reason in vocab_problems(specs, tokens):
            r.problem(path, reason)
    except Exception as exc:  # a plugin's token_ids must not crash validation
        r.problem("processors", f"token id check failed: {type(exc).__name__}: {exc}")
    search = generation.search
    if search is not None and search not in reg.search_strategies:
        known = ", ".join(sorted(reg.search_strategies)) or "none"
        r.problem("generation.search", f"unknown search strategy {search!r}{_suggest(search, reg.search_strategies)}; known: {known}")

    if r.problems:
        raise ConfigError(r.problems)
    try:
        ordered = sort_specs(specs, order, reg)
    except Exception as exc:  # a plugin's order preset must not crash validation
        raise ConfigError([Problem(source, "order", f"order {order!r} failed: {type(exc).__name__}: {exc}")]) from None
    return ResolvedConfig(source, order, tokens, tuple(ordered), selector, generation, preset, tuple(specs), on_empty_row)


def problems_of(obj: Any, **kwargs: Any) -> list[Problem]:
    """Every problem in a config, or an empty list when it is valid."""
    try:
        resolve(obj, **kwargs)
    except ConfigError as exc:
        return list(exc.problems)
    return []

