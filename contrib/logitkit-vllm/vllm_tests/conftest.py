"""Shared pieces of the vLLM tests: CPU settings, the demo model and logitkit's own greedy reference."""

from __future__ import annotations

import os

# Before vLLM is imported: the CPU platform, no worker subprocess (the engine runs in this process).
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from typing import Any

import pytest
import torch
from logitkit_vllm.requests import config_data

import logitkit
from logitkit.demo.loading import MODEL_DIR, load_model

DEMO_MODEL = str(MODEL_DIR)


@pytest.fixture(scope="session")
def demo_model() -> Any:
    return load_model()


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
