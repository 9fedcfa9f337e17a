"""What both processor classes run when vLLM admits a request (``validate_params``).

A bad config is refused before the request reaches a batch, which vLLM turns
into an HTTP 400 online. A config is also refused when the engine runs
speculative decoding: vLLM's V1 runner then loads no logits-processor
plugins at all, yet its frontend still asks ours to validate, so without this
the request would be accepted and its config silently not applied.
"""

from __future__ import annotations

import sys
from typing import Any

from logitkit import ConfigError
from logitkit_vllm.requests import EXTRA_ARGS_KEY, server_configs

SPECULATIVE_REFUSAL = (
    "logitkit config refused: this server runs speculative decoding, and vLLM applies no "
    "logits-processor plugins then; send the request without extra_args.logitkit, "
    "or serve without --speculative-config"
)


def validate_request(sampling_params: Any) -> None:
    """Raise ``ValueError`` (vLLM's refusal) for a config that is bad or would not run."""
    try:
        plan = server_configs().plan(sampling_params.extra_args)
    except ConfigError as exc:
        raise ValueError(f"logitkit config refused:\n{exc}") from None
    if plan is not None and speculative_decoding_in_use():
        raise ValueError(SPECULATIVE_REFUSAL)


def speculative_decoding_in_use() -> bool:
    """Whether the engine admitting this request decodes speculatively.

    vLLM hands ``validate_params`` the request only, so the engine's config is
    read from the caller that holds it: vLLM's ``InputProcessor`` (both runners
    validate from its ``_validate_params``), found on the call stack.
    """
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        kind = type(owner)
        if kind.__name__ == "InputProcessor" and kind.__module__.startswith("vllm."):
            config = getattr(owner, "vllm_config", None)
            return getattr(config, "speculative_config", None) is not None
        frame = frame.f_back  # type: ignore[assignment]
    return False


__all__ = ["EXTRA_ARGS_KEY", "SPECULATIVE_REFUSAL", "speculative_decoding_in_use", "validate_request"]
