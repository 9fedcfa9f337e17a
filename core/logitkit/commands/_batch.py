"""``logitkit generate --input prompts.jsonl --output results.jsonl``: the batch job behind the CLI."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from logitkit.batch import BatchJob, append_records, read_prompts, resume, run_hash
from logitkit.config import ResolvedConfig
from logitkit.errors import ConfigError, Problem
from logitkit.formats.common import canonical_resolved
from logitkit.pipeline import Pipeline
from logitkit.registry import registry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", "-i", type=Path, metavar="FILE",
        help="batch job: one prompt per line ({\"prompt\": ...} or a JSON string); needs --output",
    )  # fmt: skip
    parser.add_argument(
        "--output", "-o", type=Path, metavar="FILE",
        help="batch job: one JSON result per prompt, appended; a rerun resumes where it stopped",
    )  # fmt: skip
    parser.add_argument(
        "--batch-size", type=int, default=16, metavar="N",
        help="batch job: prompts per batch, grouped by token length (default 16)",
    )  # fmt: skip


def run_batch(
    args: argparse.Namespace, model: Any, codec: Any, resolved: ResolvedConfig, max_new: int
) -> int:
    """Run (or resume) the batch job; exit 0 when every line was a prompt, 1 when some were skipped."""
    from logitkit.generation import generate

    if args.output is None:
        raise ConfigError([Problem("generate", "--output", "--input needs --output FILE")])
    if args.batch_size < 1:
        raise ConfigError([Problem("generate", "--batch-size", f"must be >= 1 (got {args.batch_size})")])
    if not args.input.is_file():
        raise ConfigError([Problem(str(args.input), "--input", "file not found")])
    records, bad = read_prompts(args.input)
    for number, reason in bad:
        print(f"{args.input}:{number}: {reason}; skipped", file=sys.stderr)
    seed = args.seed if args.seed is not None else (resolved.generation.seed or 0)
    config = canonical_resolved(resolved, registry())
    config_hash = run_hash(config, max_new_tokens=max_new, seed=seed, model=str(args.model or "demo"))
    state = resume(args.output, config_hash)
    if state.repaired:
        print(f"{args.output}: repaired a half-written last line", file=sys.stderr)
    pipe = Pipeline.from_resolved(resolved, tokenizer=codec.tokenizer)
    eos = list(pipe.tokens.eos or codec.eos_ids)
    pad = pipe.tokens.pad if pipe.tokens.pad is not None else (eos[0] if eos else 0)

    def generate_batch(ids: Any, mask: Any, seeds: list[int]) -> Any:
        return generate(
            model, ids, pipe, attention_mask=mask, tokenizer=codec.tokenizer, eos_token_id=eos,
            pad_token_id=pad, seeds=seeds, max_new_tokens=max_new,
        )  # fmt: skip

    job = BatchJob(
        records, codec.encode, codec.decode, generate_batch, eos, pad, seed, config_hash,
        batch_size=args.batch_size,
    )  # fmt: skip
    lines = {r.line for r in records}
    already = len(state.done & lines)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("generating", total=len(records), completed=already)
        for rows in job.batches(state.done):
            missing = [r for r in job.results(rows) if r["line"] not in state.done]
            append_records(args.output, missing)
            state.done.update(r["line"] for r in missing)
            progress.advance(task, len(missing))
    print(
        f"[{len(records)} prompts: {len(records) - already} generated, {already} already in {args.output}"
        f"{f', {len(bad)} bad lines skipped' if bad else ''}; hash {config_hash}]",
        file=sys.stderr,
    )
    return 1 if bad else 0
