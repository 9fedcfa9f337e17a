"""The served model's tokenizer, for the processors that read one (json_schema, regex, grammar, choice)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vllm.config import VllmConfig


def served_tokenizer(vllm_config: VllmConfig) -> Any:
    """The tokenizer vLLM serves the model with, loaded from the same path as a transformers fast tokenizer.

    Loaded by transformers rather than taken from vLLM's tokenizer registry, whose
    API changes between releases; both read the same files, so the ids agree.
    """
    from transformers import AutoTokenizer

    model = vllm_config.model_config
    return AutoTokenizer.from_pretrained(
        model.tokenizer, revision=model.tokenizer_revision, trust_remote_code=model.trust_remote_code
    )
