"""Every built-in processor and selector through the plugin author's contract tests (logitkit.testing).

The same one-line call a third-party plugin uses; here with example configs that
make each built-in act, and a ``tokens:`` section for the eos-driven ones.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import ValidationError

from logitkit import TokenSettings
from logitkit.registry import build_registry
from logitkit.testing import check_processor_contract, check_selector_contract, contract_tests

TOKENS = TokenSettings(eos=[1], bos=0)

CONFIGS: dict[str, Any] = {
    # The samplers of other engines (logitkit_builtins.engines).
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
    "bad_words_ids": [{"bad_words_ids": [[3], [4, 5]]}, {"bad_words_ids": [[0, 1, 0], [2]]}],
    "begin_suppress_tokens": [
        {"begin_suppress_tokens": [1, 2]},
        {"begin_suppress_tokens": [0], "begin_step": 3},
    ],
    "encoder_no_repeat_ngram_size": {"ngram_size": 2},
    "encoder_repetition_penalty": [{"penalty": 1.5}, {"penalty": 0.7}],
    "epsilon_cutoff": [{"epsilon_cutoff": 0.02}, {"epsilon_cutoff": 0.2, "min_tokens_to_keep": 3}],
    "eta_cutoff": [{"eta_cutoff": 0.02}, {"eta_cutoff": 0.5, "min_tokens_to_keep": 2}],
    "exponential_decay_length_penalty": [
        {"start_index": 0, "decay_factor": 1.5},
        {"start_index": 2, "decay_factor": 0.8},
    ],
    "forced_bos_token_id": [{}, {"forced_bos_token_id": 2}],
    "forced_decoder_ids": {"forced_decoder_ids": {1: 0, 3: 2}},
    "forced_eos_token_id": [{"max_new_tokens": 2}, {"max_length": 4}],
    "guidance_scale": {"guidance_scale": 1.0},  # without a model; the mixing is checked below
    "min_length": {"min_length": 12},
    "min_new_tokens": {"min_new_tokens": 6},
    "min_p": [{"min_p": 0.1}, {"min_p": 0.9, "min_tokens_to_keep": 2}],
    "no_repeat_ngram_size": [{"ngram_size": 1}, {"ngram_size": 2}, {"ngram_size": 3}],
    "repetition_penalty": [
        {"penalty": 1.3},
        {"penalty": 0.8, "normalize": True},
        {"penalty": 2.0, "prompt_ignore_length": 2},
    ],
    "sequence_bias": {
        "sequence_bias": [{"tokens": [1, 2], "bias": 3.0}, {"tokens": [0], "bias": -2.0}]
    },
    "suppress_tokens": {"suppress_tokens": [0, 3]},
    "temperature": [{"temperature": 0.7}, {"temperature": 1.8}, {"temperature": 0.0}],
    "top_h": [{"top_h": 0.5}, {"top_h": 0.95}],
    "top_k": [{"top_k": 1}, {"top_k": 3}, {"top_k": 2, "min_tokens_to_keep": 4}],
    "top_p": [{"top_p": 0.8}, {"top_p": 0.3, "min_tokens_to_keep": 2}],
    "typical_p": [{"typical_p": 0.8}, {"typical_p": 0.2, "min_tokens_to_keep": 2}],
    "watermarking": [
        {"bias": 2.0},
        {"bias": 4.0, "greenlist_ratio": 0.5, "seeding_scheme": "selfhash", "context_width": 2},
    ],
    "sample": {"seed": 3},
}

# multinomial draws from torch's global RNG, so it is not batch-invariant by design: checked below at batch 1.
# The output constraints need a real tokenizer and its vocabulary: tests/test_constraints.py runs them.
CONSTRAINTS = ("json_schema", "regex", "grammar", "choice")
test_contract = contract_tests(
    "builtins", configs=CONFIGS, skip=("multinomial", *CONSTRAINTS), examples=25, tokens=TOKENS
)


def test_every_builtin_is_covered() -> None:
    """A new built-in whose defaults do nothing should get an example config above."""
    reg = build_registry(env={})
    names = {n for n, e in reg.processors.items() if e.plugin == "builtins" and not e.cls.code_only}
    without_example = names - set(CONFIGS) - set(CONSTRAINTS)
    assert without_example <= {"renormalize_logits", "remove_invalid_values"}, without_example


def test_multinomial_keeps_the_selector_contract_row_by_row() -> None:
    reg = build_registry(env={})
    torch.manual_seed(0)
    check_selector_contract(
        reg.selectors["multinomial"].cls, batch=(1, 1), examples=25, tokens=TOKENS
    )


class FakeModel:
    """A row-independent causal LM stand-in with a fixed vocabulary, for guidance's unconditional pass."""

    vocab = 16

    def __init__(self) -> None:
        self.table = (
            torch.randn(self.vocab, self.vocab, generator=torch.Generator().manual_seed(0)) * 2
        )

    def __call__(self, input_ids: torch.Tensor, **kwargs: Any) -> dict[str, Any]:
        return {"logits": self.table[input_ids % self.vocab], "cache": None}


def test_guidance_with_a_model_keeps_the_contract() -> None:
    reg = build_registry(env={})
    cls = reg.processors["guidance_scale"].cls
    for scale in (0.0, 1.5, 3.0):
        check_processor_contract(
            cls,
            {"guidance_scale": scale, "use_cache": False},
            examples=20,
            vocab=(FakeModel.vocab, FakeModel.vocab),
            context={"model": FakeModel()},
        )


def installed_third_party() -> list[Any]:
    """Every processor of every installed third-party plugin that builds from its defaults."""

    params = []
    for name, entry in sorted(build_registry().processors.items()):
        if entry.plugin == "builtins" or entry.cls.code_only:
            continue
        try:
            entry.cls.Config()
        except ValidationError:
            continue  # needs an example config: its plugin's own contract tests give one
        params.append(pytest.param(entry.cls, id=f"{entry.plugin}:{name}"))
    return params or [pytest.param(None, id="none-installed")]


@pytest.mark.parametrize("cls", installed_third_party())
def test_installed_third_party_processors_keep_the_contract_with_their_defaults(cls: Any) -> None:
    if cls is None:
        pytest.skip("no third-party plugin with default-buildable processors is installed")
    check_processor_contract(cls, examples=10, tokens=TOKENS, shrink=False)
