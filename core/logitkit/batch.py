"""A resumable batch job: one JSON line of results per prompt of a JSONL file.

``logitkit generate --input prompts.jsonl --output results.jsonl --config FILE``
reads one prompt per line (``{"prompt": "..."}``, or a bare JSON string), runs
them in batches of prompts of similar token length, and appends one record per
prompt: its input line, id, prompt, text, tokens, finish reason and the run's
hash. Started again, it repairs a half-written last line, skips the prompts
already written and runs the rest.

Why every record equals an uninterrupted run's: the batches are planned from
the whole input (sorted by token length, then line), never from what is left,
so a resumed batch holds the same rows with the same padding; each row samples
from its own seed, derived from the run's seed and its line number. A batch is
rerun whole when any of its records is missing, and only the missing records
are written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from logitkit.errors import ConfigError, Problem
from logitkit.prompts import left_pad

#: A bad input line: (line number, reason).
BadLine = tuple[int, str]
SEED_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant: distinct lines give well-spread seeds


@dataclass(frozen=True)
class PromptRecord:
    """One prompt of the input file."""

    line: int
    prompt: str
    id: Any = None


@dataclass
class Resume:
    """What an existing results file holds for this run."""

    done: set[int] = field(default_factory=set)
    repaired: bool = False


def read_prompts(path: Path) -> tuple[list[PromptRecord], list[BadLine]]:
    """The prompts of a JSONL file, and the lines that are not prompts (reported, then skipped)."""
    records: list[PromptRecord] = []
    bad: list[BadLine] = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                bad.append((number, f"not JSON: {exc.msg}"))
                continue
            if isinstance(value, str):
                records.append(PromptRecord(number, value))
            elif isinstance(value, dict) and isinstance(value.get("prompt"), str):
                records.append(PromptRecord(number, value["prompt"], value.get("id")))
            else:
                bad.append((number, 'expected {"prompt": "..."} or a JSON string'))
    return records, bad


def run_hash(config: Any, **settings: Any) -> str:
    """A short hash of everything that decides the records: the canonical config and the run's settings."""
    text = json.dumps({"config": config, **settings}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def resume(path: Path, config_hash: str) -> Resume:
    """Read the records already written; cut a half-written last line (a killed run) off the file."""
    state = Resume()
    if not path.exists():
        return state
    data = path.read_bytes()
    *complete, tail = data.split(b"\n")  # tail: b"" when the file ends with a newline, else a cut line
    keep = 0
    for number, raw in enumerate(complete, start=1):
        try:
            record = json.loads(raw)
            line, written_hash = int(record["line"]), record["config_hash"]
        except (ValueError, KeyError, TypeError):
            if number == len(complete) and not tail:  # a broken last line: also a cut write
                break
            raise ConfigError([Problem(str(path), f"line {number}", "not a results record; use another --output")]) from None
        if written_hash != config_hash:
            raise ConfigError([Problem(
                str(path), f"line {number}",
                f"written by another run (hash {written_hash}, this run is {config_hash}); use another --output",
            )])  # fmt: skip
        state.done.add(line)
        keep += len(raw) + 1
    if keep != len(data):
        with path.open("r+b") as handle:
            handle.truncate(keep)
        state.repaired = True
    return state


def plan_batches(
    records: Sequence[PromptRecord], lengths: Sequence[int], batch_size: int
) -> list[list[int]]:
    """Indices into ``records``, in batches of similar token length (the whole input, always the same plan)."""
    order = sorted(range(len(records)), key=lambda i: (lengths[i], records[i].line))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def row_seed(seed: int, line: int) -> int:
    """The sample seed of one input line: independent of the batch it runs in."""
    return ((seed * SEED_MIX + line) & 0x7FFF_FFFF_FFFF_FFFF) or 1


def generated_tokens(new: list[int], reason: str, eos: Sequence[int], pad: int) -> list[int]:
    """A row's own tokens: up to its eos, or without the pad that filled it after it stopped."""
    if reason in ("eos", "constraint"):
        end = next(i for i, t in enumerate(new) if t in eos)
        return new[: end + 1]
    if reason != "length":
        while new and new[-1] == pad:
            new = new[:-1]
    return new


@dataclass
class BatchJob:
    """The inputs of one run; ``generate_batch(ids, mask, seeds)`` wraps ``logitkit.generate``."""

    records: list[PromptRecord]
    encode: Callable[[str], list[int]]
    decode: Callable[[list[int]], str]
    generate_batch: Callable[[torch.Tensor, torch.Tensor, list[int]], Any]
    eos: Sequence[int]
    pad: int
    seed: int
    config_hash: str
    batch_size: int = 16

    def batches(self, done: set[int]) -> Iterator[list[PromptRecord]]:
        """The planned batches that still miss a record."""
        lengths = [len(self.encode(r.prompt)) for r in self.records]
        for batch in plan_batches(self.records, lengths, self.batch_size):
            rows = [self.records[i] for i in batch]
            if any(r.line not in done for r in rows):
                yield rows

    def results(self, rows: list[PromptRecord]) -> list[dict[str, Any]]:
        """One record per row of a batch."""
        ids, mask = left_pad([self.encode(r.prompt) for r in rows], self.pad)
        out = self.generate_batch(ids, mask, [row_seed(self.seed, r.line) for r in rows])
        records = []
        for i, row in enumerate(rows):
            reason = out.finish_reasons[i]
            tokens = generated_tokens(out.new_tokens[i].tolist(), reason, self.eos, self.pad)
            records.append({
                "line": row.line, "id": row.id, "prompt": row.prompt, "text": self.decode(tokens),
                "tokens": tokens, "finish_reason": reason, "config_hash": self.config_hash,
            })  # fmt: skip
        return records


def append_records(path: Path, records: list[dict[str, Any]]) -> None:
    """Append whole lines in one write, then force them to disk, so a kill loses at most this write."""
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
