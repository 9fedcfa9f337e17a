"""logitkit's CPU kernels, built once per machine by torch's extension builder, and the torch
path's fallback when they cannot be.

A kernel replaces a run of small torch ops whose cost on CPU is mostly per-op overhead (about
6 µs each here) with one call that gives the torch path's result (``tests/test_native.py``).
The first use compiles them (about 45 s; torch caches the build under ``TORCH_EXTENSIONS_DIR``);
``LOGITKIT_NATIVE=0`` turns the kernels off, and a machine that cannot build them logs why once
and runs the torch path.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("logitkit.native")

KERNELS = Path(__file__).parent / "kernels"
#: One build per kernel interface (bumped with any change to it) and per torch version: torch's
#: cache keys a build by its sources and flags only, and a build for another torch would not load.
BUILD_NAME = "logitkit_kernels_v2_torch_" + re.sub(r"\W", "_", torch.__version__)

_lock = threading.Lock()
_module: Any = None
_failed: str | None = None


def enabled() -> bool:
    return os.environ.get("LOGITKIT_NATIVE", "1").strip().lower() not in {"0", "false", "no", "off"}


def kernels() -> Any | None:
    """The compiled kernels, building them on first use; None when off or unbuildable."""
    global _module, _failed
    if not enabled():
        return None
    if _module is not None or _failed is not None:
        return _module
    with _lock:
        if _module is None and _failed is None:
            try:
                from torch.utils.cpp_extension import load

                _module = load(
                    BUILD_NAME,
                    [str(KERNELS / "views.cpp")],
                    extra_cflags=["-O3"],
                    verbose=False,
                )
            except Exception as exc:  # no compiler, no ninja, a read-only cache: the torch path
                _failed = f"{type(exc).__name__}: {exc}"
                log.warning("logitkit's CPU kernels could not be built; using torch ops (%s)", _failed)
    return _module


def build_error() -> str | None:
    """Why the kernels could not be built, once a build was tried."""
    return _failed


def kernel(name: str, tensor: torch.Tensor) -> Any | None:
    """Kernel ``name`` when it applies to ``tensor`` (CPU, a dtype it reads exactly, nothing to
    differentiate), else None: the caller then runs its torch ops."""
    if tensor.device.type != "cpu" or tensor.dtype not in (torch.float32, torch.bfloat16, torch.float16):
        return None
    if torch.is_grad_enabled() and tensor.requires_grad:
        return None
    module = kernels()
    return None if module is None else getattr(module, name)
