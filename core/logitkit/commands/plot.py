"""``logitkit plot``: PNG pictures of next-token distributions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from logitkit.commands._output import console
from logitkit.errors import ConfigError
from logitkit.inspection import SYNTHETIC_SEED, next_token_logits, stage_views, synthetic_logits
from logitkit.pipeline import Pipeline

HELP = "Draw next-token distributions as PNGs: temperature, entropy against temperature, or a pipeline's stages."

#: The source document's figures use 50 tokens with N(0, 1) logits.
PLOT_VOCAB = 50
DEFAULT_TEMPERATURES = (0.5, 1.0, 1.5)


def _common(parser: argparse.ArgumentParser, vocab: int) -> None:
    parser.add_argument(
        "--prompt", metavar="TEXT", help="use the model's real next-token distribution after TEXT"
    )
    parser.add_argument(
        "--model",
        "-m",
        metavar="PATH",
        help="local transformers model folder for --prompt (default: the demo model)",
    )
    parser.add_argument(
        "--vocab",
        type=int,
        default=vocab,
        metavar="N",
        help=f"without --prompt: number of synthetic N(0, 1) logits (default {vocab}, seed {SYNTHETIC_SEED})",
    )
    parser.add_argument(
        "--out",
        "-o",
        type=Path,
        default=Path("."),
        metavar="DIR|FILE.png",
        help="folder for the PNGs (default: .), or the PNG's name (a figure of two PNGs adds _raw/_sorted)",
    )
    parser.add_argument("--prefix", default="", metavar="TEXT", help="prepended to every file name")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="figure", metavar="FIGURE", required=True)
    temperature = sub.add_parser(
        "temperature",
        help="probabilities at several temperatures: by token index, and sorted on a log scale",
    )
    temperature.add_argument(
        "--values",
        type=float,
        nargs="+",
        default=list(DEFAULT_TEMPERATURES),
        metavar="T",
        help="temperatures to draw (default 0.5 1.0 1.5)",
    )
    temperature.add_argument(
        "--tokens",
        type=int,
        default=PLOT_VOCAB,
        metavar="N",
        help=f"with --prompt: tokens drawn in the by-index figure (default {PLOT_VOCAB})",
    )
    _common(temperature, PLOT_VOCAB)
    entropy = sub.add_parser("entropy", help="entropy of the distribution against temperature")
    entropy.add_argument(
        "--range",
        type=float,
        nargs=2,
        default=[0.05, 3.0],
        metavar=("FROM", "TO"),
        help="temperatures (default 0.05 3.0)",
    )
    _common(entropy, PLOT_VOCAB)
    pipeline = sub.add_parser(
        "pipeline", help="the distribution after each stage of a config's pipeline"
    )
    pipeline.add_argument("file", metavar="FILE", help="YAML, JSON or TOML config file")
    _common(pipeline, 1000)


def _positive(values: list[float], what: str) -> None:
    bad = [v for v in values if not v > 0]
    if bad:
        raise SystemExit(f"error: {what} must be > 0 (got {bad[0]})")


def distribution(args: argparse.Namespace) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """Logits, prompt ids and a title suffix: from the model for --prompt, else synthetic."""
    if args.prompt is None:
        return synthetic_logits(args.vocab), None, f" ({args.vocab} synthetic N(0, 1) logits)"
    from logitkit.demo import load_codec, load_model

    model = load_model(args.model)
    codec = load_codec(args.model)
    ids = torch.tensor([codec.encode(args.prompt)], dtype=torch.long)
    return next_token_logits(model, ids), ids, f" (next token after {args.prompt!r})"


def png(out: Path, prefix: str, figure: str, part: str | None = None) -> Path:
    """Where a figure goes: ``out`` itself when it names a .png, else a file in the folder ``out``."""
    if out.suffix.lower() == ".png":
        return out if part is None else out.with_name(f"{out.stem}_{part}{out.suffix}")
    return out / f"{prefix}{figure}{'_' + part if part else ''}.png"


def run(args: argparse.Namespace) -> int:
    from logitkit import plotting

    pipe = (
        Pipeline.from_config(args.file) if args.figure == "pipeline" else None
    )  # config errors before model loading
    try:
        logits, ids, suffix = distribution(args)
    except FileNotFoundError as exc:  # --model is not a model folder
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out
    written: list[Path] = []
    if args.figure == "temperature":
        _positive(args.values, "--values")
        shown = args.tokens if args.prompt is not None else None
        written.append(
            plotting.temperature_raw(
                logits, args.values, png(out, args.prefix, "temperature", "raw"), suffix, shown
            )
        )
        written.append(
            plotting.temperature_sorted(
                logits, args.values, png(out, args.prefix, "temperature", "sorted"), suffix
            )
        )
    elif args.figure == "entropy":
        low, high = args.range
        _positive([low, high - low], "--range FROM and TO - FROM")
        temperatures = torch.linspace(low, high, 60).tolist()
        written.append(
            plotting.entropy_curve(logits, temperatures, png(out, args.prefix, "entropy"), suffix)
        )
    else:
        assert pipe is not None
        try:
            views = stage_views(pipe, logits, input_ids=ids)
        except ConfigError:
            raise
        except (RuntimeError, ValueError, IndexError) as exc:
            print(f"error: cannot replay {args.file} on this distribution: {exc}", file=sys.stderr)
            return 1
        written.append(plotting.pipeline_stages(views, png(out, args.prefix, "pipeline"), suffix))
    for path in written:
        console.print(f"wrote {path}")
    return 0
