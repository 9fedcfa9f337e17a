"""The vLLM config of the engine that loads or calls this package.

vLLM hands a processor class nothing about the engine when it loads the
class from the entry point or asks it to validate a request, and only
worker code runs under vLLM's "current config". Whoever does the loading or
validating holds the config, though: the frontend's ``InputProcessor`` and
the workers' model runners keep it as ``self.vllm_config``, so it is read
from the nearest caller that has one.
"""

from __future__ import annotations

import sys
from typing import Any


def engine_config() -> Any | None:
    """The current ``VllmConfig``, else the nearest caller's ``self.vllm_config``; None outside an engine."""
    from vllm.config import VllmConfig, get_current_vllm_config_or_none

    config = get_current_vllm_config_or_none()
    if config is not None:
        return config
    frame = sys._getframe(1)
    while frame is not None:
        found = getattr(frame.f_locals.get("self"), "vllm_config", None)
        if isinstance(found, VllmConfig):
            return found
        frame = frame.f_back  # type: ignore[assignment]
    return None
