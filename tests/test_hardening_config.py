"""Issue 15: configs that used to validate and then crash, or validate what the JSON Schema rejects."""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from logitkit import ConfigError, Pipeline
from logitkit.config import problems_of
from logitkit.registry import registry
from logitkit.schema import build_json_schema

BIG = 2**63
INT64_MAX = 2**63 - 1
IDS = torch.tensor([[1, 2, 3]])


def reasons(config: Any) -> list[str]:
    return [p.line() for p in problems_of(config)]


# -- item 6: unbounded integers ------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "path"),
    [
        ([{"logit_bias": {BIG: 1.0}}], "processors[0].logit_bias"),
        ([{"suppress_tokens": [BIG]}], "processors[0].suppress_tokens"),
        ({"selector": {"name": "sample", "seed": BIG}}, "selector.seed"),
        ([{"top_k": {"top_k": 3, "min_tokens_to_keep": BIG}}], "processors[0].min_tokens_to_keep"),
        ([{"repetition_penalty": {"penalty": 1.2, "prompt_ignore_length": BIG}}], "processors[0].prompt_ignore_length"),
        ([{"dry": {"multiplier": 0.8, "allowed_length": BIG}}], "processors[0].allowed_length"),
        ({"generation": {"seed": BIG}}, "generation.seed"),
        ({"tokens": {"eos": [BIG]}}, "tokens.eos"),
        ([{"sequence_bias": [[[BIG], 1.0]]}], "processors[0].sequence_bias[0].tokens"),
    ],
)
def test_integers_past_int64_are_config_errors(config: Any, path: str) -> None:
    found = reasons(config)
    assert found, f"{config} validated"
    assert any(f"{path}:" in line and "2**63 - 1" in line for line in found), found


@pytest.mark.parametrize(
    "config",
    [
        [{"logit_bias": {INT64_MAX: 1.0}}],
        [{"suppress_tokens": [INT64_MAX]}],
        [{"allowed_token_ids": [3, INT64_MAX]}],
        {"selector": {"name": "sample", "seed": INT64_MAX}},
        [{"top_k": {"top_k": 3, "min_tokens_to_keep": INT64_MAX}}],
        [{"top_p": {"top_p": 0.5, "min_tokens_to_keep": INT64_MAX}}],
        [{"repetition_penalty": {"penalty": 1.2, "prompt_ignore_length": INT64_MAX}}],
        [{"dry": {"multiplier": 0.8, "allowed_length": INT64_MAX}}],
        [{"bad_words_ids": [[INT64_MAX]]}],
        {"selector": {"name": "mirostat_v2", "tau": 1024.0}},
        {"selector": {"name": "mirostat", "tau": 1024.0}},
    ],
)
def test_the_largest_valid_integers_run(config: Any) -> None:
    pipe = Pipeline.from_config(config, tokenizer=None)
    tokens = pipe.next_tokens(IDS, torch.randn(2, 50, generator=torch.Generator().manual_seed(0))[:1])
    assert 0 <= int(tokens[0]) < 50


@pytest.mark.parametrize("name", ["mirostat", "mirostat_v2"])
def test_a_huge_mirostat_target_is_a_config_error(name: str) -> None:
    found = reasons({"selector": {"name": name, "tau": 4.6e39}})
    assert any("selector.tau: must be > 0 and <= 1024" in line for line in found), found


# -- item 7: bounded lengths and beams -------------------------------------------------------


@pytest.mark.parametrize(
    ("generation", "field"),
    [
        ({"max_new_tokens": 300_000_000}, "max_new_tokens"),
        ({"max_new_tokens": 10**12}, "max_new_tokens"),
        ({"max_length": 10**12}, "max_length"),
        ({"num_beams": 10**6}, "num_beams"),
        ({"num_return_sequences": 10**6}, "num_return_sequences"),
    ],
)
def test_lengths_and_beams_are_bounded(generation: dict[str, int], field: str) -> None:
    found = reasons({"generation": generation})
    assert any(f"generation.{field}: must be >= 1 and <= " in line for line in found), found


# -- item 8: ids past the vocabulary are dropped at run time ----------------------------------


def test_allowed_ids_past_the_vocabulary_are_dropped() -> None:
    pipe = Pipeline.from_config([{"allowed_token_ids": [5, 100]}])
    scores = torch.zeros(1, 50)
    out = pipe(IDS, scores)
    assert torch.isfinite(out[0, 5]) and bool(torch.isneginf(out[0, torch.arange(50) != 5]).all())
    assert pipe.next_tokens(IDS, scores).tolist() == [5]


def test_logit_bias_past_the_vocabulary_is_dropped() -> None:
    out = Pipeline.from_config([{"logit_bias": {100: 5.0, 3: 1.0}}])(IDS, torch.zeros(1, 50))
    assert out[0, 3] == 1.0 and float(out.sum()) == 1.0


# -- item 14: one huge error line ---------------------------------------------------------------


def test_a_huge_bad_list_makes_a_short_line() -> None:
    bad = {"processors": [{"suppress_tokens": ["x"] * 99_990}]}
    found = reasons(bad)
    assert found and max(len(line) for line in found) < 1000, [len(line) for line in found]
    bad_top_k = {"processors": [{"top_k": list(range(99_990))}]}
    assert max(len(line) for line in reasons(bad_top_k)) < 1000


# -- item 16: strict numbers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "path", "word"),
    [
        ({"temperature": True}, "processors[0].temperature", "boolean"),
        ({"min_p": True}, "processors[0].min_p", "boolean"),
        ({"top_p": "yes"}, "processors[0].top_p", "string"),
        ({"temperature": "0.7"}, "processors[0].temperature", "string"),
        ({"top_k": "5"}, "processors[0].top_k", "string"),
        ({"suppress_tokens": [True]}, "processors[0].suppress_tokens", "boolean"),
        ({"repetition_penalty": {"penalty": 1.2, "prompt_ignore_length": True}}, "processors[0].prompt_ignore_length", "boolean"),
    ],
)
def test_numbers_are_strict(entry: dict[str, Any], path: str, word: str) -> None:
    found = reasons([entry])
    assert any(line.startswith(f"<config>: {path}: ") and f"not a {word}" in line for line in found), found


def test_strict_numbers_agree_with_the_json_schema() -> None:
    """Every value the validator refuses is also refused by the schema's type for that field."""
    import jsonschema

    schema = build_json_schema(registry())
    for entry in ({"temperature": True}, {"min_p": True}, {"top_p": "yes"}, {"temperature": "0.7"}):
        document = {"processors": [entry]}
        assert reasons(document)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(json.loads(json.dumps(document)), schema)


def test_generation_and_tokens_numbers_are_strict() -> None:
    assert any("generation.max_new_tokens: must be an integer, not a string" in line for line in reasons({"generation": {"max_new_tokens": "5"}}))
    assert any("tokens.vocab_size: must be an integer, not a boolean" in line for line in reasons({"tokens": {"vocab_size": True}}))


def test_booleans_still_go_where_a_boolean_goes() -> None:
    assert not reasons([{"repetition_penalty": {"penalty": 1.2, "normalize": True}}])
    assert not reasons({"generation": {"early_stopping": True, "output_scores": True}})
    # JSON's logit_bias keys are strings; they stay accepted.
    assert not reasons([{"logit_bias": {"50": 1.0}}])


# -- FINDINGS: '- temperature: false' ------------------------------------------------------------


def test_false_for_a_valued_processor_is_an_error_not_a_silent_drop() -> None:
    found = reasons([{"temperature": False}])
    assert any("processors[0].temperature: must be a number, not a boolean" in line for line in found), found
    # A flag processor is still switched off by 'false'.
    assert Pipeline.from_config([{"remove_invalid_values": False}]).processors == ()


def test_config_error_carries_every_strict_problem() -> None:
    with pytest.raises(ConfigError) as info:
        Pipeline.from_config([{"temperature": True}, {"top_k": "3"}])
    assert len(info.value.problems) == 2


def test_the_schema_types_each_selector_by_its_own_fields() -> None:
    import jsonschema

    schema = build_json_schema(registry())
    jsonschema.validate({"selector": {"name": "sample", "seed": 3}}, schema)
    for bad in ({"name": "sample", "seed": "3"}, {"name": "sample", "sead": 3}, {"name": "nonesuch"}):
        assert reasons({"selector": bad})
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"selector": bad}, schema)


# -- item 12: reads that never end ------------------------------------------------------------


def test_a_yaml_symlink_to_dev_zero_is_refused_without_reading(tmp_path) -> None:  # type: ignore[no-untyped-def]
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    found = reasons(str(link))
    assert found == [f"{link}: not a regular file (a device, FIFO or socket)"]


def test_a_fifo_is_refused_without_hanging(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    assert reasons(str(fifo)) == [f"{fifo}: not a regular file (a device, FIFO or socket)"]


def test_an_int_keyed_entry_over_a_preset_is_a_config_error() -> None:
    """The long fuzz run's find: ``- 0: null`` merged over a preset's list raised KeyError('0')."""
    import yaml

    config = yaml.safe_load("processors:\n- 0: null\n- 0: null\npreset: balanced\n")
    with pytest.raises(ConfigError, match="processors"):
        Pipeline.from_config(config)
