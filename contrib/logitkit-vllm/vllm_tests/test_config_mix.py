"""The mixed configs the vLLM tests run: stateless, history-reading, stateful, greedy, by name, none."""

from __future__ import annotations

import json
from typing import Any

CONFIGS: list[Any] = [
    None,
    {"processors": [{"temperature": 0.7}, {"top_k": 20}, {"top_p": 0.9}, {"min_p": 0.02}]},
    json.dumps({"processors": [{"repetition_penalty": 1.4}, {"no_repeat_ngram_size": 2}]}),
    "combined",
    {"processors": [{"name": "xtc", "probability": 0.6, "threshold": 0.01}]},
    {"processors": [{"repetition_penalty": 1.5}], "selector": "greedy"},
    json.dumps({"processors": [{"name": "dry", "multiplier": 0.8}, {"suppress_tokens": [5, 6, 7]}]}),
    {"processors": [{"sequence_bias": {"3": 4.0}}, {"logit_softcap": 5.0}]},
]


def test_every_config_is_valid() -> None:
    from logitkit_vllm.requests import RequestConfigs, ServerPolicy

    configs = RequestConfigs(ServerPolicy())
    for raw in CONFIGS:
        plan = configs.plan(None if raw is None else {"logitkit": raw})
        assert (plan is None) == (raw is None)
