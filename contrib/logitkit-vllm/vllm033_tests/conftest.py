"""vLLM 0.33.0's own classes on CPU (installed with --no-deps): the settings they need before vLLM is imported."""

from __future__ import annotations

import os

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")  # VllmConfig() needs a platform

import vllm.utils.torch_utils

vllm.utils.torch_utils.PIN_MEMORY = False  # before an InputBatch is built: there is no pinned memory on CPU
