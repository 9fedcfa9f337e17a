"""The samplers of other engines ship with the default install: ``logitkit list`` shows them under the built-ins."""

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


def test_logitkit_list_shows_every_engine_sampler_as_a_builtin() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGITKIT_")}
    result = subprocess.run(
        [sys.executable, "-m", "logitkit.cli", "list", "--json"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    builtins = {row["name"] for row in listed["processors"] if row["plugin"] == "builtins"}
    assert builtins >= PROCESSORS
    assert {row["name"] for row in listed["selectors"] if row["plugin"] == "builtins"} >= SELECTORS
    stages = {row["name"]: row["stage"] for row in listed["processors"]}
    assert stages["top_n_sigma"].startswith("250") and stages["xtc"] == "truncation"
