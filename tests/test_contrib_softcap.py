"""The contrib example plugin: installed as a distribution, it shows up, validates and runs at its stage."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_cli_core import run_cli

from conftest import write_dist_info
from logitkit import Pipeline
from logitkit.registry import build_registry, set_registry

SOFTCAP_SRC = Path(__file__).resolve().parents[1] / "contrib" / "logitkit-softcap" / "src"


@pytest.fixture
def installed(tmp_path: Path) -> Iterator[Path]:
    """Install the contrib package by writing its .dist-info (entry_points.txt) beside its source."""
    write_dist_info(tmp_path, "logitkit-softcap", "0.1.0", {"softcap": "logitkit_softcap"})
    sys.path[:0] = [str(tmp_path), str(SOFTCAP_SRC)]
    importlib.invalidate_caches()
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.path.remove(str(SOFTCAP_SRC))
    importlib.invalidate_caches()


def test_contrib_appears_in_list(installed: Path) -> None:
    result = run_cli("list", "--json", pythonpath=[installed, SOFTCAP_SRC])
    row = next(r for r in json.loads(result.stdout)["processors"] if r["name"] == "logit_softcap")
    assert (row["plugin"], row["version"]) == ("softcap", "0.1.0")
    assert row["stage"].startswith("250")


def test_contrib_validates_and_runs_between_logits_and_temperature(installed: Path) -> None:
    reg = build_registry(env={})
    set_registry(reg)
    assert reg.processors["logit_softcap"].plugin == "softcap"
    pipe = Pipeline.from_config([{"temperature": 0.5}, {"logit_softcap": 2.0}, {"top_k": 3}])
    assert [p.name for p in pipe.processors] == ["logit_softcap", "temperature", "top_k"]
    scores = torch.tensor([[10.0, 1.0, -10.0, float("-inf"), 0.0]])
    out = pipe(torch.zeros(1, 1, dtype=torch.long), scores)
    expected = torch.tanh(scores / 2.0) * 2.0 / 0.5
    kept = [0, 1, 4]
    assert torch.allclose(out[0, kept], expected[0, kept])
    assert bool(torch.isneginf(out[0, [2, 3]]).all())  # dropped by top_k, and masked before
    with pytest.raises(Exception, match=r"processors\[0\]\.cap: must be > 0"):
        Pipeline.from_config([{"logit_softcap": -1.0}])
