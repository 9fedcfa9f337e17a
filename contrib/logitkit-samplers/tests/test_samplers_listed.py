"""Installed, the plugin shows every sampler in ``logitkit list`` under its own name."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROCESSORS = {
    "frequency_penalty", "presence_penalty", "logit_bias", "allowed_token_ids", "dry", "xtc",
    "top_n_sigma", "dynamic_temperature", "top_a", "tfs", "quadratic_smoothing",
}  # fmt: skip
SELECTORS = {"mirostat", "mirostat_v2"}


def test_logitkit_list_shows_every_sampler_with_the_plugin_name() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGITKIT_")}
    result = subprocess.run(
        [sys.executable, "-m", "logitkit.cli", "list", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    ours = {row["name"] for row in listed["processors"] if row["plugin"] == "samplers"}
    assert ours == PROCESSORS
    assert {row["name"] for row in listed["selectors"] if row["plugin"] == "samplers"} == SELECTORS
    stages = {row["name"]: row["stage"] for row in listed["processors"]}
    assert stages["top_n_sigma"].startswith("250") and stages["xtc"] == "truncation"
