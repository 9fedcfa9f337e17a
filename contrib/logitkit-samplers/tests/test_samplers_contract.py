"""Every sampler of this plugin against logitkit's processor and selector contracts (hypothesis)."""

from __future__ import annotations

from logitkit.testing import contract_tests

# Example configs that make each sampler act; a list runs each config as its own test.
CONFIGS = {
    "logit_bias": {"logit_bias": {0: 5.0, 1: -100.0}},
    "allowed_token_ids": {"allowed_token_ids": [0, 1]},
    "frequency_penalty": [{"frequency_penalty": 0.7}, {"frequency_penalty": -2.0}],
    "presence_penalty": {"presence_penalty": 1.5},
    "dry": [
        {"multiplier": 0.8, "allowed_length": 1, "sequence_breaker_ids": [0]},
        {"multiplier": 2.0, "base": 3.0, "allowed_length": 2, "penalty_last_n": 6},
    ],
    "top_n_sigma": [{"top_n_sigma": 1.0}, {"top_n_sigma": 0.1, "min_tokens_to_keep": 3}],
    "dynamic_temperature": [
        {"temperature": 0.8, "range": 0.5},
        {"temperature": 0.2, "range": 0.5, "exponent": 2.0},
        {"temperature": 0.0},
    ],
    "quadratic_smoothing": [
        {"smoothing_factor": 0.3},
        {"smoothing_factor": 2.0, "smoothing_curve": 3.0},
    ],
    "tfs": [{"tfs": 0.9}, {"tfs": 0.3, "min_tokens_to_keep": 2}],
    "top_a": [{"top_a": 0.2}, {"top_a": 1.0, "min_tokens_to_keep": 2}],
    "xtc": [
        {"probability": 1.0, "threshold": 0.05},
        {"probability": 0.5, "threshold": 0.1, "min_tokens_to_keep": 2},
    ],
    "mirostat": {"tau": 3.0, "eta": 0.2},
    "mirostat_v2": [{"tau": 3.0}, {"tau": 0.5, "eta": 1.0}],
}

test_contract = contract_tests("samplers", configs=CONFIGS, examples=25)
