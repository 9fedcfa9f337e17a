"""The vLLM tests' settings (set before vLLM is imported) and the demo model."""

from __future__ import annotations

import os

# Before vLLM is imported: the CPU platform, no worker subprocess (the engine runs in this process).
os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")
os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

from typing import Any

import pytest

from logitkit.demo import load_model


@pytest.fixture(scope="session")
def demo_model() -> Any:
    return load_model()
