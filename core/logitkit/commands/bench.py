"""``logitkit bench``: logitkit against transformers' own processors, same inputs, one run."""

from __future__ import annotations

import argparse
import sys

import torch

from logitkit import bench
from logitkit.commands._output import console, print_json, table

HELP = (
    "Time logitkit against transformers' processors and generate(): medians, ratios, softmax floor."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=8, help="rows per step (default 8)")
    parser.add_argument(
        "--vocab", type=int, default=151936, help="vocabulary size (default 151936, Qwen's)"
    )
    parser.add_argument(
        "--dtype", choices=sorted(bench.DTYPES), default="fp32", help="logits dtype (default fp32)"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=10,
        help="rounds; each side runs 3 timed calls per round (default 10)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"run only this case (repeatable): {', '.join(bench.case_names())}",
    )
    parser.add_argument(
        "--new-tokens", type=int, default=128, help="tokens per generate() (default 128)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads for both sides (default 1: stable on a shared machine; 0 = torch's choice)",
    )
    parser.add_argument(
        "--clock",
        choices=sorted(bench.CLOCKS),
        default=None,
        help="wall time, or process CPU time, which ignores waits for a busy core "
        "(default: cpu with one thread, wall otherwise)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}{unit}" if value >= 100 else f"{value:.3g}{unit}"


def run(args: argparse.Namespace) -> int:
    for flag in ("batch", "vocab", "repeat", "new_tokens"):
        if getattr(args, flag) < 1:
            print(
                f"error: --{flag.replace('_', '-')} must be >= 1 (got {getattr(args, flag)})",
                file=sys.stderr,
            )
            return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    # CPU time stands for wall time only when one thread does the work.
    clock = args.clock or ("cpu" if torch.get_num_threads() == 1 else "wall")
    shape = bench.Shape(
        batch=args.batch, vocab=args.vocab, dtype=args.dtype, new_tokens=args.new_tokens
    )

    def progress(i: int, n: int, case: bench.Case) -> None:
        print(f"[{i + 1}/{n}] {case.name}: {case.description} ...", file=sys.stderr, flush=True)

    try:
        results = bench.run(
            shape, repeat=args.repeat, only=args.only, progress=progress, clock=clock
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup = {"batch": shape.batch, "vocab": shape.vocab, "dtype": shape.dtype, "repeat": args.repeat,
             "threads": torch.get_num_threads(), "clock": clock, "torch": torch.__version__}  # fmt: skip
    if args.json:
        print_json({"setup": setup, "results": [r.as_dict() for r in results]})
        return 0
    console.print(", ".join(f"{k} {v}" for k, v in setup.items()))
    for r in results:
        print_case(r)
    return 0


def print_case(r: bench.Result) -> None:
    """One table per case: medians, fastest calls, ratios to transformers and to one softmax pass."""
    best = r.best
    unit = " tok/s" if r.unit == "tokens/s" else " ms"
    rows = [
        ("logitkit", _number(r.logitkit, unit), _number(best.get("logitkit"), unit),
         _number(r.speedup, "x"), _number(r.floor_ratio, "x")),
        (r.baseline, _number(r.transformers, unit), _number(best.get("transformers"), unit), "1x",
         _number(r.transformers / r.floor if r.floor else None, "x")),
    ]  # fmt: skip
    if r.floor is not None:
        rows.append(
            (
                "floor: one softmax",
                _number(r.floor, unit),
                _number(best.get("floor"), unit),
                "-",
                "1x",
            )
        )
    if r.added_floor_ratio is not None and r.baseline != "transformers":
        rows.append(("added by logitkit", _number(r.logitkit - r.transformers, unit), "-", "-",
                     _number(r.added_floor_ratio, "x")))  # fmt: skip
    verdict = ("met" if r.met else "NOT met") if r.targets else "no target"
    title = f"{r.name}: {r.description}\ntarget {' and '.join(r.targets) or '-'}: {verdict}"
    columns = ("side", f"median ({r.unit})", "best", f"speed-up vs {r.baseline}", "x softmax pass")
    table(title, columns, rows)
