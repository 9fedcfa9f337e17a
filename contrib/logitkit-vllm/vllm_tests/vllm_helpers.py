"""What the vLLM tests share: the mixed configs, the demo model and logitkit's own greedy reference."""

from __future__ import annotations

import json
from typing import Any

import torch
from logitkit_vllm.requests import config_data

import logitkit
from logitkit.demo import MODEL_DIR

DEMO_MODEL = str(MODEL_DIR)

CONFIGS: list[Any] = [
    None,
    {"processors": [{"temperature": 0.7}, {"top_k": 20}, {"top_p": 0.9}, {"min_p": 0.02}]},
    json.dumps({"processors": [{"repetition_penalty": 1.4}, {"no_repeat_ngram_size": 2}]}),
    "combined",
    {"processors": [{"name": "xtc", "probability": 0.6, "threshold": 0.01}]},
    {"processors": [{"repetition_penalty": 1.5}], "selector": "greedy"},
    json.dumps({"processors": [{"name": "dry", "multiplier": 0.8}, {"suppress_tokens": [5, 6, 7]}]}),
    {"processors": [{"bad_words_ids": [[3], [8, 9]]}, {"logit_softcap": 5.0}]},
]


def greedy_reference(model: Any, raw_config: Any, prompt: list[int], max_tokens: int, seed: int | None) -> list[int]:
    """``logitkit.generate`` on the demo model with the request's config and the greedy selector."""
    if raw_config is None:
        config: Any = {"processors": []}
    else:
        data = config_data(raw_config)
        config = {"processors": data} if isinstance(data, list) else dict(data)
    config["selector"] = "greedy"
    out = logitkit.generate(
        model,
        torch.tensor([prompt]),
        config,
        max_new_tokens=max_tokens,
        seeds=None if seed is None else [seed],
        eos_token_id=[],  # vLLM runs with ignore_eos: both decode max_tokens
    )
    tokens: list[int] = out.sequences[0, len(prompt) :].tolist()
    return tokens
