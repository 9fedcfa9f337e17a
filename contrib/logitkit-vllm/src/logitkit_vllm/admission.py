"""What both processor classes run when vLLM admits a request (``validate_params``).

A bad config is refused before the request reaches a batch, which vLLM turns
into an HTTP 400 online. A config is also refused when the engine runs
speculative decoding: vLLM's V1 runner then loads no logits-processor
plugins at all, yet its frontend still asks ours to validate, so without this
the request would be accepted and its config silently not applied.
"""

from __future__ import annotations

from typing import Any

from logitkit import ConfigError
from logitkit_vllm.engine_config import engine_config
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
    """Whether the engine admitting this request decodes speculatively."""
    return getattr(engine_config(), "speculative_config", None) is not None


__all__ = ["EXTRA_ARGS_KEY", "SPECULATIVE_REFUSAL", "speculative_decoding_in_use", "validate_request"]
