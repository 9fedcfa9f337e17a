"""Reading config files safely: size limit, UTF-8, safe YAML, bounded alias expansion."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import yaml

from logitkit.errors import ConfigError, Problem

#: Config files larger than this are refused before parsing (override with LOGITKIT_MAX_CONFIG_BYTES).
DEFAULT_MAX_CONFIG_BYTES = 1_000_000
#: A parsed config may hold at most this many values once YAML aliases are expanded.
MAX_CONFIG_NODES = 100_000
SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".toml": "toml"}


#: yaml's C (libyaml) parser and loader when PyYAML was built with it: about 5x faster than Python's.
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def max_config_bytes(source: str = "LOGITKIT_MAX_CONFIG_BYTES") -> int:
    """The size limit from LOGITKIT_MAX_CONFIG_BYTES, else the default; garbage there is a ConfigError."""
    raw = os.environ.get("LOGITKIT_MAX_CONFIG_BYTES")
    if raw is None or not raw.strip():
        return DEFAULT_MAX_CONFIG_BYTES
    if not raw.strip().isdigit() or int(raw) < 1:
        got = raw if len(raw) <= 40 else raw[:40] + "..."
        raise ConfigError([Problem(source, "", f"LOGITKIT_MAX_CONFIG_BYTES must be a positive whole number of bytes (got {got!r})")])
    return int(raw)


class UnreadableFile(ValueError):
    """A path that is not a regular file, or holds more than the byte limit."""


def read_bounded(path: Path, limit: int) -> bytes:
    """At most ``limit`` bytes of a regular file; raises UnreadableFile, or OSError from the system.

    A device or FIFO has st_size 0 and may never end (/dev/zero) or never start (a FIFO),
    so only regular files are opened, and the read stops at limit + 1 bytes even if the file grows.
    """
    info = path.stat()
    if stat.S_ISDIR(info.st_mode):
        raise IsADirectoryError(21, "is a directory", str(path))
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableFile("not a regular file (a device, FIFO or socket)")
    if info.st_size > limit:
        raise UnreadableFile(f"file is {info.st_size} bytes; the limit is {limit}")
    with path.open("rb") as handle:
        raw = handle.read(limit + 1)
    if len(raw) > limit:
        raise UnreadableFile(f"file is over {limit} bytes, the limit")
    return raw


def _safe_load(text: str) -> Any:
    """``yaml.safe_load`` through the C safe loader when there is one (safe tags only either way)."""
    loader = _YAML_LOADER(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _budget_error(source: str) -> ConfigError:
    return ConfigError([Problem(source, "", f"config expands to more than {MAX_CONFIG_NODES} values (YAML alias bomb?)")])


def prescan_yaml(text: str, source: str) -> int:
    """Count a YAML document's values, aliases expanded, from parser events; stop at the budget.

    No document is built, so a huge list or an alias bomb is refused after reading just past
    the budget (0.07 s for a 990 KB list, against seconds for a full parse). Counts match
    ``_count_nodes``: one per scalar and per collection, and an alias counts its anchor's values.
    """
    seen = 0
    sizes: dict[str, int] = {}  # anchor -> values under it, aliases expanded
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, values seen when it opened)
    for event in yaml.parse(text, Loader=_YAML_LOADER):
        if isinstance(event, yaml.AliasEvent):
            if any(anchor == event.anchor for anchor, _ in open_nodes):
                # "&a [*a]": a value that contains itself; its expansion never ends.
                mark = event.start_mark
                where = f"line {mark.line + 1}: " if mark else ""
                raise ConfigError([Problem(source, "", f"{where}YAML alias *{event.anchor} refers to a value that contains it (a recursive alias)")])
            seen += sizes.get(event.anchor or "", 1)
        elif isinstance(event, yaml.ScalarEvent):
            seen += 1
            if event.anchor:
                sizes[event.anchor] = 1
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            seen += 1
            open_nodes.append((event.anchor, seen - 1))
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)) and open_nodes:
            anchor, start = open_nodes.pop()
            if anchor:
                sizes[anchor] = seen - start
        if seen > MAX_CONFIG_NODES:
            raise _budget_error(source)
    return seen


def _count_nodes(obj: Any, budget: list[int], source: str) -> None:
    # Walks the expanded tree: shared YAML aliases count every time they are used.
    budget[0] -= 1
    if budget[0] < 0:
        raise _budget_error(source)
    if isinstance(obj, dict):
        for key, value in obj.items():
            _count_nodes(key, budget, source)
            _count_nodes(value, budget, source)
    elif isinstance(obj, list):
        for item in obj:
            _count_nodes(item, budget, source)


def parse_text(text: str, fmt: str, source: str) -> Any:
    """Parse config text in ``fmt`` ("yaml", "json" or "toml")."""
    try:
        if fmt == "json":
            data = json.loads(text)
        elif fmt == "toml":
            data = tomllib.loads(text)
        else:
            prescan_yaml(text, source)
            data = _safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError([Problem(source, "", f"{where}YAML tag not allowed ({exc.problem})")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        if "nesting depth" in reason:  # libyaml's own depth limit, the C twin of RecursionError
            raise ConfigError([Problem(source, "", f"{where}config is nested too deeply")]) from None
        raise ConfigError([Problem(source, "", f"{where}YAML syntax error: {reason}")]) from None
    except json.JSONDecodeError as exc:
        raise ConfigError([Problem(source, "", f"line {exc.lineno}, column {exc.colno}: JSON syntax error: {exc.msg}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(source, "", f"TOML syntax error: {exc}")]) from None
    except RecursionError:
        raise ConfigError([Problem(source, "", "config is nested too deeply")]) from None
    try:
        _count_nodes(data, [MAX_CONFIG_NODES], source)
    except RecursionError:  # JSON and TOML deep enough to parse but not to walk
        raise ConfigError([Problem(source, "", "config is nested too deeply")]) from None
    return data


def read_config_file(path: str | os.PathLike[str]) -> Any:
    """Read and parse one config file; every failure is a ``ConfigError`` naming the file."""
    p = Path(path)
    source = str(path)
    fmt = SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise ConfigError([Problem(source, "", f"unknown config format {p.suffix!r}; use .yaml, .yml, .json or .toml")])
    limit = max_config_bytes(source)
    try:
        raw = read_bounded(p, limit)
    except UnreadableFile as exc:
        hint = " (LOGITKIT_MAX_CONFIG_BYTES)" if "limit" in str(exc) else ""
        raise ConfigError([Problem(source, "", f"{exc}{hint}")]) from None
    except FileNotFoundError:
        raise ConfigError([Problem(source, "", "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([Problem(source, "", "is a directory, not a config file")]) from None
    except OSError as exc:
        raise ConfigError([Problem(source, "", f"cannot read: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([Problem(source, "", f"not UTF-8 text (byte {exc.start})")]) from None
    if "\x00" in text:
        raise ConfigError([Problem(source, "", "binary data, not a text config")])
    if not text.strip():
        raise ConfigError([Problem(source, "", "file is empty")])
    return parse_text(text, fmt, source)
