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

SHIPPED = {"chain", "top_p", "top_p_temperature", "min_p", "top_k", "typical_p", "epsilon_cutoff",
           "eta_cutoff", "top_h", "mixed_steps", "json_schema", "no_repeat_ngram", "sequence_bias", "generate",
           "prompt_lookup", "early_exit", "assisted"}  # fmt: skip


def test_smoke_run_reports_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        ["bench", "--vocab", "600", "--batch", "2", "--repeat", "1", "--new-tokens", "3", "--json"]
    )
    out, err = capsys.readouterr()
    assert code == 0
    report = json.loads(out)
    assert report["setup"]["vocab"] == 600 and report["setup"]["batch"] == [2]
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
    # batch 2 has no figure of its own: only "never slower than transformers" applies
    assert results["chain"]["targets"] == [">= 1x transformers"]
    assert "[14/17] generate" in err  # progress goes to stderr while it runs
    lookup = results["prompt_lookup"]
    assert lookup["reference"] == "plain greedy" and lookup["targets"] == [">= 1.5x plain greedy"]
    mixed = results["mixed_steps"]
    assert mixed["batch"] == 64 and mixed["reference"] == "same step"
    assert mixed["targets"] == ["<= 1.2x same step"]
    constrained = results["json_schema"]
    assert constrained["reference"] == "no constraint"
    assert constrained["added_floor_ratio"] == pytest.approx(
        (constrained["logitkit"] - constrained["transformers"]) / constrained["floor"]
    )
    assert constrained["targets"] == ["adds <= 1x softmax to no constraint"]


def test_batch_and_dtype_lists_run_every_size_with_their_targets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["bench", "--vocab", "500", "--batch", "1,8", "--dtype", "fp32,bf16",
                 "--repeat", "1", "--only", "chain", "--only", "min_p", "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0
    report = json.loads(out)
    assert report["setup"]["batch"] == [1, 8] and report["setup"]["dtype"] == ["fp32", "bf16"]
    runs = {(r["name"], r["batch"], r["dtype"]): r for r in report["results"]}
    assert set(runs) == {
        (n, b, d) for n in ("chain", "min_p") for b in (1, 8) for d in ("fp32", "bf16")
    }
    assert runs["chain", 8, "bf16"]["targets"] == [">= 40x transformers", "<= 2x softmax"]
    assert runs["chain", 1, "fp32"]["targets"] == [">= 1x transformers", "<= 3x softmax"]
    assert runs["min_p", 8, "fp32"]["targets"] == [">= 1x transformers", "<= 2.5x softmax"]
    for r in runs.values():
        assert r["transformers_floor_ratio"] == pytest.approx(r["transformers"] / r["floor"])
    assert "[8/8] min_p (batch 8, bf16)" in err


def test_the_default_run_covers_batch_1_8_and_64() -> None:
    import argparse

    from logitkit.commands.bench import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert parser.parse_args([]).batch == [1, 8, 64]
    assert parser.parse_args(["--batch", "4"]).batch == [4]


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
    assert "min_p" in out and "one softmax" in out and "transformers x softmax" in out
    assert "clock wall" in out
    assert "top_p 0.9" not in out


def test_unknown_case_and_bad_numbers_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--only", "nope"]) == 2
    assert "unknown bench case" in capsys.readouterr().err
    assert main(["bench", "--batch", "0"]) == 2
    assert "--batch must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--batch", "1,x"])
    assert "expected integers separated by commas" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--dtype", "fp32,fp8"])
    assert "unknown dtype 'fp8'" in capsys.readouterr().err


def test_both_sides_see_the_same_inputs() -> None:
    """The logitkit and transformers callables of a case agree on what they compute."""
    shape = bench.Shape(batch=2, vocab=400)
    cases = {case.name: case for case in bench.CASES}
    ours, theirs, floor = cases["no_repeat_ngram"].build(shape)  # deterministic
    assert torch.equal(ours(), theirs())
    ours, theirs, floor = cases["sequence_bias"].build(shape)
    assert torch.equal(ours(), theirs())
    assert floor is not None and floor().shape == (2, 400)
