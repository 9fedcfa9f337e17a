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
    parser.add_argument(
        "--batch",
        type=_int_list,
        default=list(bench.DEFAULT_BATCHES),
        help="rows per step, one size or a list (default 1,8,64)",
    )
    parser.add_argument(
        "--vocab", type=int, default=151936, help="vocabulary size (default 151936, Qwen's)"
    )
    parser.add_argument(
        "--dtype",
        type=_dtype_list,
        default=["fp32"],
        help=f"logits dtype, one or a list of {', '.join(sorted(bench.DTYPES))} (default fp32)",
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


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas, got {text!r}"
        ) from None
    if not values:
        raise argparse.ArgumentTypeError("expected at least one batch size")
    return values


def _dtype_list(text: str) -> list[str]:
    values = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [v for v in values if v not in bench.DTYPES]
    if unknown or not values:
        raise argparse.ArgumentTypeError(
            f"unknown dtype {', '.join(unknown) or text!r}; choose from {', '.join(sorted(bench.DTYPES))}"
        )
    return values


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}{unit}" if value >= 100 else f"{value:.3g}{unit}"


def run(args: argparse.Namespace) -> int:
    for flag in ("vocab", "repeat", "new_tokens"):
        if getattr(args, flag) < 1:
            print(
                f"error: --{flag.replace('_', '-')} must be >= 1 (got {getattr(args, flag)})",
                file=sys.stderr,
            )
            return 2
    if min(args.batch) < 1:
        print(f"error: --batch must be >= 1 (got {min(args.batch)})", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    # CPU time stands for wall time only when one thread does the work.
    clock = args.clock or ("cpu" if torch.get_num_threads() == 1 else "wall")
    shape = bench.Shape(
        batch=args.batch[0], vocab=args.vocab, dtype=args.dtype[0], new_tokens=args.new_tokens
    )

    def progress(i: int, n: int, case: bench.Case, at: bench.Shape) -> None:
        where = f"batch {at.batch}, {at.dtype}" if case.batched else at.dtype
        print(
            f"[{i + 1}/{n}] {case.name} ({where}): {case.description} ...",
            file=sys.stderr,
            flush=True,
        )

    try:
        results = bench.run(
            shape,
            repeat=args.repeat,
            only=args.only,
            progress=progress,
            clock=clock,
            batches=args.batch,
            dtypes=args.dtype,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup = {"batch": args.batch, "vocab": shape.vocab, "dtype": args.dtype, "repeat": args.repeat,
             "threads": torch.get_num_threads(), "clock": clock, "torch": torch.__version__}  # fmt: skip
    if args.json:
        print_json({"setup": setup, "results": [r.as_dict() for r in results]})
        return 0
    console.print(
        ", ".join(
            f"{k} {','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in setup.items()
        )
    )
    print_summary(results)
    return 0


def print_summary(results: list[bench.Result]) -> None:
    """One table per case, one row per batch size and dtype: medians and ratios, to transformers and to softmax."""
    by_case: dict[str, list[bench.Result]] = {}
    for r in results:
        by_case.setdefault(r.name, []).append(r)
    for name, rows in by_case.items():
        first = rows[0]
        unit = " tok/s" if first.unit == "tokens/s" else " ms"
        cells = [
            (
                r.dtype if first.unit == "tokens/s" else f"{r.batch} {r.dtype}",
                _number(r.logitkit, unit),
                _number(r.transformers, unit),
                _number(r.floor, unit),
                _number(r.speedup, "x"),
                _number(r.floor_ratio, "x"),
                _number(r.transformers_floor_ratio, "x"),
                " and ".join(r.targets) or "-",
                ("met" if r.met else "NOT met") if r.targets else "-",
            )
            for r in rows
        ]
        reference = first.reference
        columns = ("batch dtype", f"logitkit ({first.unit})", reference, "one softmax",
                   "speed-up", "logitkit x softmax", f"{reference} x softmax", "target", "met")  # fmt: skip
        table(f"{name}: {first.description}", columns, cells)
