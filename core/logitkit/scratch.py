"""Per-thread scratch buffers for vocabulary-sized temporaries.

A fresh ``[batch, vocab]`` temporary costs more than the arithmetic done in
it: the allocator hands large blocks back to the system on free, so each
call faults its pages in again (about 2 ms for 4.8 MB on the development
machine, more than one softmax pass, measured). The row statistics
therefore compute into a buffer kept per thread, slot and device, which
never leaves the function that asked for it. Per thread, so a ``Pipeline``
shared by threads stays safe; grown, never shrunk, so batches of changing
size (continuous batching) reuse it. A thread keeps its buffers until it
ends or calls ``release()``: at batch 64 and 151,936 tokens the largest
(the entropy's two, for typical_p and eta_cutoff) hold about 39 MB each.
"""

from __future__ import annotations

import threading

import torch

_local = threading.local()


def scratch(
    slot: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` for temporary use, reused by later calls with the same
    ``slot`` on this thread: its contents are overwritten by the next call, so it must not escape."""
    buffers: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = _local.__dict__.setdefault(
        "buffers", {}
    )
    key = (slot, dtype, device)
    numel = 1
    for size in shape:
        numel *= size
    buffer = buffers.get(key)
    if buffer is None or buffer.numel() < numel:
        # A normal tensor even when made under inference_mode: an inference tensor could not be
        # written to by a later call outside it.
        with torch.inference_mode(False):
            buffer = torch.empty(numel, dtype=dtype, device=device)
        buffers[key] = buffer
    return buffer[:numel].view(shape)


def release() -> None:
    """Free this thread's scratch buffers (the next call that needs one allocates it again)."""
    _local.__dict__.pop("buffers", None)
