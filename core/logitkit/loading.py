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


def max_config_bytes() -> int:
    raw = os.environ.get("LOGITKIT_MAX_CONFIG_BYTES")
    return int(raw) if raw and raw.isdigit() else DEFAULT_MAX_CONFIG_BYTES


def _count_nodes(obj: Any, budget: list[int], source: str) -> None:
    # Walks the expanded tree: shared YAML aliases count every time they are used.
    budget[0] -= 1
    if budget[0] < 0:
        raise ConfigError([Problem(source, "", f"config expands to more than {MAX_CONFIG_NODES} values (YAML alias bomb?)")])
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
            data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError([Problem(source, "", f"{where}YAML tag not allowed ({exc.problem})")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([Problem(source, "", f"{where}YAML syntax error: {reason}")]) from None
    except json.JSONDecodeError as exc:
        raise ConfigError([Problem(source, "", f"line {exc.lineno}, column {exc.colno}: JSON syntax error: {exc.msg}")]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem(source, "", f"TOML syntax error: {exc}")]) from None
    except RecursionError:
        raise ConfigError([Problem(source, "", "config is nested too deeply")]) from None
    _count_nodes(data, [MAX_CONFIG_NODES], source)
    return data


def read_config_file(path: str | os.PathLike[str]) -> Any:
    """Read and parse one config file; every failure is a ``ConfigError`` naming the file."""
    p = Path(path)
    source = str(path)
    fmt = SUFFIXES.get(p.suffix.lower())
    if fmt is None:
        raise ConfigError([Problem(source, "", f"unknown config format {p.suffix!r}; use .yaml, .yml, .json or .toml")])
    try:
        info = p.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError
        if not stat.S_ISREG(info.st_mode):
            # A device or FIFO has st_size 0 and may never end (/dev/zero) or never start (a FIFO).
            raise ConfigError([Problem(source, "", "not a regular file (a device, FIFO or socket)")])
        limit = max_config_bytes()
        if info.st_size > limit:
            raise ConfigError([Problem(source, "", f"file is {info.st_size} bytes; the limit is {limit} (LOGITKIT_MAX_CONFIG_BYTES)")])
        with p.open("rb") as handle:
            raw = handle.read(limit + 1)  # bounded even if the file grows while it is read
        if len(raw) > limit:
            raise ConfigError([Problem(source, "", f"file is over {limit} bytes, the limit (LOGITKIT_MAX_CONFIG_BYTES)")])
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
