"""``logitkit detect``: score a text or a token sequence for the watermark a config embeds.

The command does not know any watermarking scheme: it asks every processor in
the config whose class has a ``detect`` classmethod (see ``logitkit.detection``).
Exit status: 0 when every sequence is watermarked, 1 when at least one is
not, 2 when the config or the input is invalid.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import Any

import torch

from logitkit.commands._output import print_json, table
from logitkit.config import ResolvedConfig, resolve
from logitkit.detection import DEFAULT_Z_THRESHOLD, Detection
from logitkit.loading import UnreadableFile, read_bounded

HELP = "Score a text (--text, with --tokenizer) or token ids (--ids) for a config's watermark; exit 0 watermarked, 1 not, 2 bad input."

WATERMARKED, NOT_WATERMARKED, BAD_INPUT = 0, 1, 2
#: --ids-file and --text-file are read up to this many bytes; a longer (or endless) input is refused.
MAX_INPUT_BYTES = 16_000_000


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1 (a vocabulary of 0 tokens cannot be scored)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number (got {text[:40]!r})") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {value})")
    return value


def finite_float(text: str) -> float:
    """An argparse type: a finite number (every z-score compares False with NaN)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number (got {text[:40]!r})") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text[:40]!r})")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config",
        metavar="CONFIG",
        help="pipeline config (YAML, JSON or TOML) with a watermarking processor",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", metavar="TEXT", help="text to score; needs --tokenizer")
    source.add_argument(
        "--text-file",
        metavar="FILE",
        help="file whose whole content is the text to score; needs --tokenizer",
    )
    source.add_argument(
        "--ids", metavar="IDS", help="token ids, comma or space separated: --ids 5,17,3"
    )
    source.add_argument(
        "--ids-file",
        metavar="FILE",
        help="token ids, one sequence per line, comma or space separated",
    )
    parser.add_argument(
        "--tokenizer", metavar="PATH", help="tokenizer.json, or a folder holding one"
    )
    parser.add_argument(
        "--vocab-size",
        type=positive_int,
        metavar="N",
        help="the model's vocabulary size (overrides tokens.vocab_size)",
    )
    parser.add_argument("--z-threshold", type=finite_float, default=DEFAULT_Z_THRESHOLD, metavar="Z",
                        help=f"z-score above which a sequence counts as watermarked (default {DEFAULT_Z_THRESHOLD})")  # fmt: skip
    parser.add_argument(
        "--processor",
        metavar="NAME",
        help="which detecting processor of the config to use (default: all)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


class InputError(ValueError):
    """The text or ids to score cannot be read."""


def parse_ids(text: str, origin: str) -> list[list[int]]:
    """One sequence per non-empty line; ids separated by commas and/or spaces."""
    sequences = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = [f for f in re.split(r"[,\s]+", line.strip()) if f]
        if not fields:
            continue
        try:
            ids = [int(f) for f in fields]
        except ValueError:
            raise InputError(f"{origin}: line {number}: token ids must be integers") from None
        if any(i < 0 for i in ids):
            raise InputError(f"{origin}: line {number}: token ids must be >= 0")
        sequences.append(ids)
    if not sequences:
        raise InputError(f"{origin}: no token ids")
    return sequences


def load_tokenizer(path: str) -> Any:
    from tokenizers import Tokenizer

    file = Path(path)
    if file.is_dir():
        file = file / "tokenizer.json"
    if not file.is_file():
        raise InputError(f"--tokenizer: {path}: no tokenizer.json there")
    try:
        return Tokenizer.from_file(str(file))
    except Exception as exc:
        raise InputError(f"--tokenizer: {file}: cannot load: {exc}") from None


def read_sequences(args: argparse.Namespace) -> list[list[int]]:
    if args.ids is not None:
        return parse_ids(args.ids, "--ids")
    if args.ids_file is not None:
        return parse_ids(_read(args.ids_file, "--ids-file"), args.ids_file)
    text = args.text if args.text is not None else _read(args.text_file, "--text-file")
    if args.tokenizer is None:
        raise InputError(
            "scoring a text needs --tokenizer (tokenizer.json of the model that wrote it)"
        )
    ids = list(load_tokenizer(args.tokenizer).encode(text, add_special_tokens=False).ids)
    if not ids:
        raise InputError("the text has no tokens")
    return [ids]


def _read(path: str, option: str) -> str:
    try:
        return read_bounded(Path(path), MAX_INPUT_BYTES).decode("utf-8")
    except UnreadableFile as exc:
        raise InputError(f"{option}: {path}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"{option}: {path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{option}: {path}: {exc.strerror}") from None


def detectors(resolved: ResolvedConfig, only: str | None) -> list[Any]:
    found = [spec for spec in resolved.processors if callable(getattr(spec.cls, "detect", None))]
    if only is not None:
        found = [spec for spec in found if spec.name == only]
    if not found:
        which = f"processor {only!r} with" if only else "processor with"
        raise InputError(
            f"{resolved.source}: no {which} a detector in this config (e.g. watermarking)"
        )
    return found


def run(args: argparse.Namespace) -> int:
    try:
        resolved = resolve(args.config)
        tokens = resolved.tokens
        if args.vocab_size is not None:
            tokens = tokens.model_copy(update={"vocab_size": args.vocab_size})
        specs = detectors(resolved, args.processor)
        sequences = read_sequences(args)
        results: list[tuple[int, str, Detection]] = []
        for spec in specs:
            for index, ids in enumerate(sequences):
                tensor = torch.tensor([ids], dtype=torch.int64)
                (found,) = spec.cls.detect(
                    spec.config, tokens, tensor, z_threshold=args.z_threshold
                )
                results.append((index, spec.name, found))
    except (InputError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return BAD_INPUT
    _report(results, args)
    return WATERMARKED if all(d.watermarked for _, _, d in results) else NOT_WATERMARKED


def _report(results: list[tuple[int, str, Detection]], args: argparse.Namespace) -> None:
    if args.json:
        print_json([{"sequence": i, "processor": name, **d.as_dict()} for i, name, d in results])
        return
    rows = [
        (i, name, d.scheme, d.scored, f"{d.score:.4f}", f"{d.expected:.4f}", f"{d.z_score:.2f}", f"{d.p_value:.2e}",
         "watermarked" if d.watermarked else "not watermarked")
        for i, name, d in results
    ]  # fmt: skip
    table(f"{args.config} (z > {args.z_threshold} counts as watermarked)",
          ("seq", "processor", "scheme", "scored", "score", "expected", "z", "p-value", "verdict"), rows)  # fmt: skip
