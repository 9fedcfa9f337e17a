"""The ``vllm`` order preset reproduces vLLM v1's sampler order (vllm/v1/sample/sampler.py)."""

from __future__ import annotations

from logitkit import Pipeline
from logitkit.registry import Registry

# vLLM v1: allowed-token whitelist, bad words, min tokens, logit bias, repetition / frequency /
# presence penalties, temperature, min_p, then top_k and top_p.
VLLM_V1 = [
    "allowed_token_ids", "bad_words_ids", "min_new_tokens", "logit_bias", "repetition_penalty",
    "frequency_penalty", "presence_penalty", "temperature", "min_p", "top_k", "top_p",
]  # fmt: skip


def test_vllm_preset_reproduces_vllm_v1(reg: Registry) -> None:
    config = {
        "order": "vllm",
        "tokens": {"eos": 0},
        "processors": [
            {"top_p": 0.9}, {"top_k": 20}, {"min_p": 0.05}, {"temperature": 0.7}, {"presence_penalty": 0.5},
            {"frequency_penalty": 0.5}, {"repetition_penalty": 1.2}, {"logit_bias": {1: 2.0}},
            {"min_new_tokens": 3}, {"bad_words_ids": [[5]]}, {"allowed_token_ids": [0, 1, 2, 3, 4, 5, 6]},
        ],
    }  # fmt: skip
    assert [p.name for p in Pipeline.from_config(config).processors] == VLLM_V1


def test_llama_cpp_preset_puts_logit_bias_first_and_temperature_last(reg: Registry) -> None:
    config = {
        "order": "llama.cpp",
        "processors": [{"temperature": 0.7}, {"top_k": 40}, {"logit_bias": {1: 1.0}}, {"dry": 0.8}],
    }
    assert [p.name for p in Pipeline.from_config(config).processors] == [
        "logit_bias",
        "dry",
        "top_k",
        "temperature",
    ]
