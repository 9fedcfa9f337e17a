"""A short smoke run of ``logitkit bench``: every shipped case runs and reports sane numbers.

Timing thresholds are never asserted here (machines are noisy); only that the
bench measures both sides on the same inputs and reports ratios consistently.
"""

from __future__ import annotations

import json

import pytest
import torch

from logitkit import bench
from logitkit.cli import main

SHIPPED = {"chain", "top_p", "min_p", "no_repeat_ngram", "sequence_bias", "json_schema", "generate"}


def test_smoke_run_reports_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["bench", "--vocab", "600", "--batch", "2", "--repeat", "1", "--new-tokens", "3", "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 0
    report = json.loads(out)
    assert report["setup"]["vocab"] == 600 and report["setup"]["batch"] == 2
    assert report["setup"]["threads"] == 1 and report["setup"]["clock"] == "cpu"
    results = {r["name"]: r for r in report["results"]}
    assert set(results) == SHIPPED
    for r in results.values():
        assert r["logitkit"] > 0 and r["transformers"] > 0
        if r["unit"] == "tokens/s":
            assert r["speedup"] == pytest.approx(r["logitkit"] / r["transformers"])
        else:
            assert r["speedup"] == pytest.approx(r["transformers"] / r["logitkit"])
            assert r["floor_ratio"] == pytest.approx(r["logitkit"] / r["floor"])
        assert isinstance(r["met"], bool)
    assert results["chain"]["targets"] == [">= 25x transformers", "<= 4x softmax"]
    constrained = results["json_schema"]
    assert constrained["baseline"] == "no constraint"
    assert constrained["added_floor_ratio"] == pytest.approx(
        (constrained["logitkit"] - constrained["transformers"]) / constrained["floor"]
    )
    assert constrained["targets"] == ["adds <= 1x softmax to no constraint"]
    assert "[7/7] generate" in err  # progress goes to stderr while it runs


def test_table_output_and_only(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "bench",
            "--vocab",
            "300",
            "--batch",
            "1",
            "--repeat",
            "1",
            "--only",
            "min_p",
            "--dtype",
            "bf16",
            "--clock",
            "wall",
        ]
    )
    out, _ = capsys.readouterr()
    assert code == 0
    assert "min_p" in out and "floor: one softmax" in out and "transformers" in out
    assert "clock wall" in out
    assert "top_p 0.9" not in out


def test_unknown_case_and_bad_numbers_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "nope"]) == 2
    assert "unknown bench case" in capsys.readouterr().err
    assert main(["bench", "--batch", "0"]) == 2
    assert "--batch must be >= 1" in capsys.readouterr().err


def test_both_sides_see_the_same_inputs() -> None:
    """The logitkit and transformers callables of a case agree on what they compute."""
    shape = bench.Shape(batch=2, vocab=400)
    ours, theirs, floor = bench.CASES[3].build(shape)  # no_repeat_ngram: deterministic
    assert torch.equal(ours(), theirs())
    ours, theirs, floor = bench.CASES[4].build(shape)  # sequence_bias
    assert torch.equal(ours(), theirs())
    assert floor is not None and floor().shape == (2, 400)
