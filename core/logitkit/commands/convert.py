"""``logitkit convert``: translate sampling settings between logitkit, transformers, OpenAI and llama.cpp."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from logitkit.errors import ConfigError, Problem
from logitkit.formats import FORMATS, convert
from logitkit.formats.sniff import guess_format
from logitkit.loading import max_config_bytes, parse_text, read_config_file

HELP = "Convert sampling settings between logitkit, generation_config.json, OpenAI and llama.cpp, reporting what is lost."

ALIASES = {
    "hf": "generation_config",
    "transformers": "generation_config",
    "llama": "llama.cpp",
    "llamacpp": "llama.cpp",
}
CHOICES = (*FORMATS, *ALIASES)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "input",
        nargs="?",
        metavar="FILE",
        help="input file (YAML/JSON/TOML); '-' reads JSON from stdin",
    )
    parser.add_argument(
        "--from", dest="source", choices=CHOICES, help="input format (default: from the file name)"
    )
    parser.add_argument("--to", dest="target", choices=CHOICES, required=True, help="output format")
    parser.add_argument(
        "--samplers", help="llama.cpp input: the sampler chain ('top_k;top_p;temperature' or 'kpt')"
    )
    parser.add_argument(
        "--param", "-p", action="append", default=[], metavar="KEY=VALUE",
        help="an input parameter (repeatable); VALUE is read as JSON when it parses",
    )  # fmt: skip
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when any parameter could not be carried over"
    )


def _guess(path: str | None, samplers: str | None, data: Any) -> str:
    """The input format: from --samplers, the file name, or failing those the file's keys."""
    if samplers is not None:
        return "llama.cpp"
    name = Path(path).name if path and path != "-" else ""
    if name.endswith((".yaml", ".yml", ".toml")):
        return "logitkit"
    if "generation_config" in name:
        return "generation_config"
    fmt = guess_format(data)
    if fmt is not None:
        return fmt
    where = path if path and name else "convert"
    raise ConfigError(
        [Problem(where, "--from", "cannot tell the format from the file name or its keys; give --from")]
    )


def _param(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ConfigError([Problem("convert", "--param", f"expected KEY=VALUE, got {text!r}")])
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        return key, raw
    except RecursionError:
        raise ConfigError([Problem("convert", f"--param {key}", "value is nested too deeply")]) from None


def _read(args: argparse.Namespace) -> Any:
    data: Any = {}
    if args.input == "-":
        # The same parser and limits as a config file: size, nesting depth, value budget.
        limit = max_config_bytes("<stdin>")
        text = sys.stdin.read(limit + 1)
        if len(text) > limit:
            raise ConfigError([Problem("<stdin>", "", f"input is over {limit} characters, the limit (LOGITKIT_MAX_CONFIG_BYTES)")])
        data = parse_text(text, "json", "<stdin>")
    elif args.input is not None:
        data = read_config_file(args.input)
    params = dict(_param(p) for p in args.param)
    if args.samplers is not None:
        params["samplers"] = args.samplers
    if params:
        if not isinstance(data, dict):
            raise ConfigError(
                [Problem(args.input or "convert", "", "--param needs a mapping input")]
            )
        data = {**data, **params}
    return data


def _render(value: Any, target: str, path: str | None) -> str:
    if target == "logitkit" and not (path and path.endswith(".json")):
        return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)
    return json.dumps(value, indent=2) + "\n"


def run(args: argparse.Namespace) -> int:
    data = _read(args)
    source = (
        ALIASES.get(args.source, args.source) if args.source else _guess(args.input, args.samplers, data)
    )
    target = ALIASES.get(args.target, args.target)
    origin = "<stdin>" if args.input == "-" else (args.input or "<parameters>")
    result = convert(data, source, target, origin=origin)
    for line in result.report():
        print(line, file=sys.stderr)
    text = _render(result.value, target, args.output)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 1 if args.strict and result.lost else 0
