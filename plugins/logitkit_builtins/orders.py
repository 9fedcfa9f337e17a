"""Order presets: the processor orders of other engines, selectable with ``order: NAME``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from logitkit import Processor
from logitkit.registry import OrderFunction


def order_by_names(names: Sequence[str]) -> OrderFunction:
    """Reorder the named processors among the slots they occupy; others stay where the stage order put them."""
    rank = {name: i for i, name in enumerate(names)}

    def reorder(classes: list[type[Processor]]) -> list[type[Processor]]:
        slots = [i for i, cls in enumerate(classes) if cls.name in rank]
        named = sorted((classes[i] for i in slots), key=lambda cls: rank[cls.name])
        result = list(classes)
        for slot, cls in zip(slots, named, strict=True):
            result[slot] = cls
        return result

    return reorder


# transformers' _get_logits_processor: penalties and masks, temperature, then truncation.
HF_ORDER = (
    "guidance_scale", "sequence_bias", "encoder_repetition_penalty", "repetition_penalty",
    "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids", "min_length",
    "min_new_tokens", "prefix_allowed_tokens", "forced_bos_token_id", "forced_eos_token_id",
    "remove_invalid_values", "exponential_decay_length_penalty", "suppress_tokens",
    "begin_suppress_tokens", "temperature", "top_h", "top_k", "top_p", "min_p", "typical_p",
    "epsilon_cutoff", "eta_cutoff", "watermarking", "renormalize_logits",
)  # fmt: skip

# vLLM v1's Sampler (vllm/v1/sample/sampler.py, its docstring lists the steps): the allowed-token
# whitelist, bad words, the non-argmax-invariant processors (min tokens, then logit bias), the
# penalties (repetition, frequency, presence), temperature, min_p, then top_k/top_p.
VLLM_ORDER = (
    "allowed_token_ids", "bad_words_ids", "min_new_tokens", "logit_bias",
    "repetition_penalty", "frequency_penalty", "presence_penalty",
    "temperature", "min_p", "top_k", "top_p",
)  # fmt: skip

# llama.cpp's default --samplers chain: truncation first, temperature last.
LLAMA_CPP_ORDER = (
    "logit_bias", "repetition_penalty", "presence_penalty", "frequency_penalty", "dry", "top_n_sigma", "top_k",
    "typical_p", "top_p", "min_p", "xtc", "temperature", "dynamic_temperature",
)  # fmt: skip


def register_order_presets(register: Callable[..., None]) -> None:
    register("hf", order_by_names(HF_ORDER), "transformers' _get_logits_processor order")
    register("vllm", order_by_names(VLLM_ORDER), "vLLM v1: allowed ids, bad words, min tokens, logit bias, penalties, temperature, min_p, top_k, top_p")
    register("llama.cpp", order_by_names(LLAMA_CPP_ORDER), "llama.cpp's default chain: temperature last")
