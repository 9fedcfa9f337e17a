"""The batch job: 200 prompts on the demo model, interrupted by SIGINT and by SIGKILL, then resumed.

Every resumed run ends with exactly 200 records, none twice, each identical to
an uninterrupted run's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from logitkit.batch import PromptRecord, generated_tokens, plan_batches, resume, row_seed

pytestmark = pytest.mark.slow
STARTS = ["def ", "import ", "class ", "for i in ", "return ", "if x ", "# ", "self.", "print(", "with open("]
ARGS = ["-n", "12", "--batch-size", "4", "--seed", "7"]


def write_prompts(path: Path, count: int = 200) -> None:
    lines = [json.dumps({"id": f"p{i}", "prompt": STARTS[i % len(STARTS)] + "x" * (i % 7)}) for i in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def command(tmp: Path, output: Path) -> list[str]:
    return [sys.executable, "-m", "logitkit.cli", "generate", "--input", str(tmp / "prompts.jsonl"),
            "--output", str(output), "--config", str(tmp / "cfg.yaml"), *ARGS]  # fmt: skip


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("LOGITKIT_")}


def records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("batch")
    write_prompts(tmp / "prompts.jsonl")
    (tmp / "cfg.yaml").write_text("processors:\n  - temperature: 0.9\n  - top_k: 40\n", encoding="utf-8")
    reference = tmp / "reference.jsonl"
    done = subprocess.run(command(tmp, reference), capture_output=True, text=True, env=env(), timeout=600)
    assert done.returncode == 0, done.stderr
    rows = records(reference)
    assert len(rows) == 200 and len({r["line"] for r in rows}) == 200
    return tmp, {r["line"]: r for r in rows}


def interrupt(tmp: Path, output: Path, sig: signal.Signals) -> int:
    """Start the job, send ``sig`` once some records are written, and return its exit code."""
    process = subprocess.Popen(command(tmp, output), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env())
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if output.exists() and output.read_text(encoding="utf-8").count("\n") >= 40:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the job finished before it could be interrupted"
    process.send_signal(sig)
    process.wait(timeout=120)
    return process.returncode


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_an_interrupted_job_resumes_to_the_uninterrupted_result(
    job: tuple[Path, dict[int, dict[str, Any]]], sig: signal.Signals
) -> None:
    tmp, reference = job
    output = tmp / f"{sig.name}.jsonl"
    code = interrupt(tmp, output, sig)
    assert code == (130 if sig == signal.SIGINT else -signal.SIGKILL)
    partial = output.read_text(encoding="utf-8").count("\n")
    assert 40 <= partial < 200
    again = subprocess.run(command(tmp, output), capture_output=True, text=True, env=env(), timeout=600)
    assert again.returncode == 0, again.stderr
    rows = records(output)
    assert len(rows) == 200
    assert len({r["line"] for r in rows}) == 200  # none written twice
    assert all(r == reference[r["line"]] for r in rows)  # each identical to the uninterrupted run's


def test_a_half_written_last_line_is_repaired(job: tuple[Path, dict[int, dict[str, Any]]]) -> None:
    tmp, reference = job
    output = tmp / "cut.jsonl"
    text = (tmp / "reference.jsonl").read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    output.write_text("".join(lines[:57]) + lines[57][:20], encoding="utf-8")
    again = subprocess.run(command(tmp, output), capture_output=True, text=True, env=env(), timeout=600)
    assert again.returncode == 0, again.stderr
    assert "repaired a half-written last line" in again.stderr
    rows = records(output)
    assert len(rows) == 200 and all(r == reference[r["line"]] for r in rows)


def test_a_finished_job_writes_nothing_more_and_another_config_is_refused(
    job: tuple[Path, dict[int, dict[str, Any]]],
) -> None:
    tmp, _ = job
    output = tmp / "done.jsonl"
    output.write_bytes((tmp / "reference.jsonl").read_bytes())
    again = subprocess.run(command(tmp, output), capture_output=True, text=True, env=env(), timeout=600)
    assert again.returncode == 0 and output.read_bytes() == (tmp / "reference.jsonl").read_bytes()
    assert "0 generated, 200 already" in again.stderr
    other = command(tmp, output)
    other[other.index("--seed") + 1] = "8"
    refused = subprocess.run(other, capture_output=True, text=True, env=env(), timeout=600)
    assert refused.returncode == 2 and "written by another run" in refused.stderr


def test_bad_lines_are_reported_with_their_number_and_skipped(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "def "}\nnot json\n{"text": "no prompt"}\n"import "\n', encoding="utf-8")
    output = tmp_path / "out.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "logitkit.cli", "generate", "--input", str(prompts), "--output", str(output), "-n", "4"],
        capture_output=True, text=True, env=env(), timeout=600,
    )  # fmt: skip
    assert result.returncode == 1
    assert f"{prompts}:2: not JSON" in result.stderr and f"{prompts}:3: expected" in result.stderr
    assert sorted(r["line"] for r in records(output)) == [1, 4]
    assert all(set(r) == {"line", "id", "prompt", "text", "tokens", "finish_reason", "config_hash"} for r in records(output))


def test_batches_group_similar_lengths_and_never_depend_on_what_is_done() -> None:
    rows = [PromptRecord(i + 1, "x" * n) for i, n in enumerate([5, 1, 3, 1, 5, 2])]
    assert plan_batches(rows, [5, 1, 3, 1, 5, 2], 2) == [[1, 3], [5, 2], [0, 4]]
    assert row_seed(7, 3) != row_seed(7, 4) and row_seed(7, 3) == row_seed(7, 3)
    assert generated_tokens([5, 6, 0, 0], "eos", [0], 0) == [5, 6, 0]
    assert generated_tokens([5, 6, 9, 9], "stop_string", [0], 9) == [5, 6]
    assert generated_tokens([5, 9], "length", [0], 9) == [5, 9]


def test_resume_of_a_missing_file_is_empty(tmp_path: Path) -> None:
    state = resume(tmp_path / "none.jsonl", "abc")
    assert state.done == set() and not state.repaired
