"""``logitkit explain``: the resolved pipeline, and the distribution after each stage."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import torch

from logitkit.commands._output import console, table
from logitkit.errors import ConfigError
from logitkit.inspection import (
    SYNTHETIC_SEED,
    SYNTHETIC_VOCAB,
    StageView,
    next_token_logits,
    stage_views,
    synthetic_logits,
)
from logitkit.pipeline import Pipeline

HELP = "Show the resolved pipeline for a config, and what each stage does to the next-token distribution."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="YAML, JSON or TOML config file")
    parser.add_argument(
        "--prompt",
        metavar="TEXT",
        help="run the model once on TEXT and use its real next-token distribution",
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
        default=SYNTHETIC_VOCAB,
        metavar="N",
        help=f"without --prompt: size of the synthetic N(0, 1) logits (default {SYNTHETIC_VOCAB}, seed {SYNTHETIC_SEED})",
    )
    parser.add_argument("--no-stages", action="store_true", help="only show the resolved pipeline")


def _params(config: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.items())


def run(args: argparse.Namespace) -> int:
    pipe = Pipeline.from_config(args.file)
    rows = [
        (i + 1, row["name"], row["stage"], row["priority"], _params(row["config"]))
        for i, row in enumerate(pipe.describe())
    ]
    table(
        f"{args.file} (order: {pipe.order})", ("#", "name", "stage", "priority", "parameters"), rows
    )
    if pipe.selector is not None and pipe.selector.name in ("sample", "greedy"):
        console.print(f"selector: {pipe.selector.name}")
    if args.no_stages:
        return 0
    try:
        views, title, label = distribution_views(pipe, args.prompt, args.model, args.vocab)
    except ConfigError:
        raise
    except FileNotFoundError as exc:  # --model is not a model folder
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, ValueError, IndexError) as exc:
        # A processor that cannot run on this distribution (say, token ids beyond the synthetic
        # vocabulary) should not hide the pipeline table above behind a traceback.
        print(f"error: cannot replay {args.file} on this distribution: {exc}", file=sys.stderr)
        return 1
    stage_table(views, title, label)
    return 0


def distribution_views(
    pipe: Pipeline, prompt: str | None, model_path: str | None, vocab: int
) -> tuple[list[StageView], str, Any]:
    """Per-stage views of the model's distribution after ``prompt``, or of the synthetic one."""
    if prompt is None:
        views = stage_views(pipe, synthetic_logits(vocab))
        return (
            views,
            f"Synthetic distribution: {vocab} logits from N(0, 1), seed {SYNTHETIC_SEED}",
            lambda i: f"#{i}",
        )
    from logitkit.demo import load_codec, load_model

    model = load_model(model_path)
    codec = load_codec(model_path)
    ids = torch.tensor([codec.encode(prompt)], dtype=torch.long)
    pipe = pipe.replace(model=model, tokenizer=codec.tokenizer)
    views = stage_views(pipe, next_token_logits(model, ids), input_ids=ids)
    return views, f"Next token after {prompt!r}", lambda i: repr(codec.token_text(i))


def stage_table(views: list[StageView], title: str, label: Any) -> None:
    rows = [
        (
            "model" if v.label == "model" else f"{i}. {v.label}",
            v.survivors,
            f"{v.entropy:.3f}",
            f"{v.kept_mass:.3f}",
            f"{v.model_mass:.3f}",
            "  ".join(f"{label(t)} {p:.3f}" for t, p in v.top),
        )
        for i, v in enumerate(views)
    ]
    table(
        title,
        ("after", "tokens", "entropy (nats)", "kept mass", "model mass", "top 5 (probability)"),
        rows,
    )
    console.print(
        "kept mass: probability, in the distribution entering that stage, of the tokens it keeps; "
        "model mass: the same under the model's raw distribution."
    )
