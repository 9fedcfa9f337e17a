"""``logitkit explain``: the resolved pipeline, and the distribution after each stage."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from logitkit import Pipeline
from logitkit.cli import main
from logitkit.inspection import entropy, stage_views, synthetic_logits

WALKTHROUGH = "examples/seed-walkthrough.yaml"


def reference_walkthrough(logits: np.ndarray) -> list[int]:
    """Survivor counts after T 0.8, top_k 50, top_p 0.9, min_p 0.01, computed from the definitions."""
    z = logits.astype(np.float64) / 0.8
    counts = [len(z)]
    keep = np.argsort(-z)[:50]
    counts.append(len(keep))
    p = np.exp(z[keep] - z[keep].max())
    p /= p.sum()
    order = np.argsort(-p)
    cumulative = np.cumsum(p[order])
    n = int(np.searchsorted(cumulative, 0.9) + 1)  # smallest head whose mass reaches 0.9
    keep = keep[order[:n]]
    counts.append(len(keep))
    p = np.exp(z[keep] - z[keep].max())
    p /= p.sum()
    counts.append(int((p >= 0.01 * p.max()).sum()))
    return counts


@pytest.fixture
def views(reg):
    pipe = Pipeline.from_config(WALKTHROUGH, registry=reg)
    return stage_views(pipe, synthetic_logits())


def test_stage_rows_follow_pipeline_order(views):
    assert [v.label for v in views] == ["model", "temperature", "top_k", "top_p", "min_p"]


def test_survivor_counts_match_the_definitions(views):
    expected = reference_walkthrough(synthetic_logits().numpy())
    assert [v.survivors for v in views] == [1000, *expected]
    assert 35 <= views[-1].survivors <= 50  # the source document's "about 45 tokens remain"


def test_entropy_mass_and_top_tokens(views):
    raw = views[0].probs.numpy()
    assert views[0].entropy == pytest.approx(float(-(raw * np.log(raw)).sum()))
    for before, after in itertools.pairwise(views):
        assert after.probs.sum().item() == pytest.approx(1.0)
        alive = after.probs > 0
        assert after.kept_mass == pytest.approx(before.probs[alive].sum().item())
        assert after.model_mass == pytest.approx(views[0].probs[alive].sum().item())
        assert (
            after.entropy <= before.entropy + 1e-9
        )  # sharpening and truncation never add entropy here
        ids = [t for t, _ in after.top]
        assert ids == torch.topk(after.probs, 5).indices.tolist()
    assert views[3].kept_mass >= 0.9  # top_p keeps at least p of what it receives


def test_entropy_is_in_nats():
    assert entropy(torch.full((8,), 1 / 8, dtype=torch.float64)) == pytest.approx(math.log(8))
    assert entropy(torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)) == 0.0


def test_explain_without_prompt_prints_both_tables(capsys):
    assert main(["explain", WALKTHROUGH]) == 0
    out = capsys.readouterr().out
    assert "temperature=0.8" in out  # the resolved pipeline table is still there
    assert "Synthetic distribution" in out
    for label in ("model", "1. temperature", "2. top_k", "3. top_p", "4. min_p"):
        assert label in out
    counts = reference_walkthrough(synthetic_logits().numpy())
    top_p_row = next(line for line in out.splitlines() if "3. top_p" in line)
    assert f" {counts[2]} " in top_p_row


def test_explain_with_prompt_uses_the_demo_model(capsys):
    assert main(["explain", WALKTHROUGH, "--prompt", "import os"]) == 0
    out = capsys.readouterr().out
    assert "Next token after 'import os'" in out
    model_row = next(line for line in out.splitlines() if "model" in line and "'" in line)
    assert "4096" in model_row  # the real vocabulary, not the synthetic one


def test_invalid_config_exits_2_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("processors:\n  - top_k: 0\n")
    assert main(["explain", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{bad}: processors[0].top_k: must be >= 1 (got 0)"]


def test_not_a_model_folder_exits_2(tmp_path, capsys):
    assert main(["explain", WALKTHROUGH, "--prompt", "x", "--model", str(tmp_path)]) == 2
    assert "not a transformers model folder" in capsys.readouterr().err
