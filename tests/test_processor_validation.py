"""`logitkit validate` rejects out-of-range values of every token-level built-in, naming the field and range."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from logitkit.cli import main

EOS = {"eos": [2]}

# (processors entry, expected message after "file: processors[0].")
OUT_OF_RANGE: list[tuple[dict[str, Any], str]] = [
    ({"repetition_penalty": 0}, "penalty: must be > 0 (got 0)"),
    ({"name": "repetition_penalty", "penalty": 1.2, "prompt_ignore_length": -1}, "prompt_ignore_length: must be >= 0 (got -1)"),
    ({"encoder_repetition_penalty": -1.5}, "penalty: must be > 0 (got -1.5)"),
    ({"no_repeat_ngram_size": 0}, "ngram_size: must be >= 1 (got 0)"),
    ({"encoder_no_repeat_ngram_size": -2}, "ngram_size: must be >= 1 (got -2)"),
    ({"bad_words_ids": [[3], [4, -1]]}, "bad_words_ids[1][1]: must be >= 0 (got -1)"),
    ({"sequence_bias": [[[5, -3], 1.0]]}, "sequence_bias[0].tokens[1]: must be >= 0 (got -3)"),
    ({"suppress_tokens": [1, -4]}, "suppress_tokens[1]: must be >= 0 (got -4)"),
    ({"begin_suppress_tokens": [-1]}, "begin_suppress_tokens[0]: must be >= 0 (got -1)"),
    ({"name": "begin_suppress_tokens", "begin_suppress_tokens": [3], "begin_step": -1}, "begin_step: must be >= 0 (got -1)"),
    ({"forced_bos_token_id": -1}, "forced_bos_token_id: must be >= 0 (got -1)"),
    ({"name": "forced_eos_token_id", "forced_eos_token_id": [-2], "max_length": 9}, "forced_eos_token_id[0]: must be >= 0 (got -2)"),
    ({"name": "forced_eos_token_id", "max_length": 0}, "max_length: must be > 0 (got 0)"),
    ({"forced_decoder_ids": [[1, -7]]}, "forced_decoder_ids[1]: must be >= 0 (got -7)"),
    ({"min_length": -3}, "min_length: must be >= 0 (got -3)"),
    ({"min_new_tokens": -1}, "min_new_tokens: must be >= 0 (got -1)"),
    ({"name": "exponential_decay_length_penalty", "start_index": -1, "decay_factor": 1.1}, "start_index: must be >= 0 (got -1)"),
    ({"name": "exponential_decay_length_penalty", "start_index": 4, "decay_factor": 0}, "decay_factor: must be > 0 (got 0)"),
]


def validate(tmp_path: Path, config: Any, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    code = main(["validate", str(path)])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("entry", "message"), OUT_OF_RANGE, ids=[m.split(":")[0] for _, m in OUT_OF_RANGE])
def test_out_of_range_is_rejected_with_field_and_range(tmp_path: Path, capsys: pytest.CaptureFixture[str], entry: dict[str, Any], message: str) -> None:
    code, err = validate(tmp_path, {"tokens": EOS, "processors": [entry]}, capsys)
    assert code == 2
    assert f"config.json: processors[0].{message}" in err, err
    assert "Traceback" not in err


CONTEXT_MISTAKES: list[tuple[Any, str]] = [
    ([{"min_length": 5}], "processors[0]: needs an eos token id"),
    ([{"min_new_tokens": 5}], "processors[0]: needs an eos token id"),
    ([{"name": "exponential_decay_length_penalty", "start_index": 1, "decay_factor": 1.2}], "processors[0]: needs an eos token id"),
    ([{"name": "forced_eos_token_id", "max_length": 20}], "processors[0]: needs a token"),
    ([{"forced_bos_token_id": None}], "processors[0]: needs a token"),
    ({"tokens": EOS, "processors": [{"forced_eos_token_id": 2}]}, "set exactly one of max_length or max_new_tokens"),
    (
        {"tokens": EOS, "processors": [{"forced_bos_token_id": 7}, {"suppress_tokens": [7, 8]}]},
        "processors[1]: token 7 is forced by 'forced_bos_token_id' and then suppressed by 'suppress_tokens', which empties the row",
    ),
    (
        # forced after suppressed (transformers' order for Whisper): the force wins, nothing to refuse
        {"tokens": EOS, "processors": [{"forced_decoder_ids": [[1, None], [2, 7]]}, {"suppress_tokens": [7, 8]}, {"forced_bos_token_id": 8}]},
        "processors[1]: token 8 is forced by 'forced_bos_token_id' and then suppressed by 'suppress_tokens'",
    ),
    (
        {"tokens": {"vocab_size": 10}, "processors": [{"bad_words_ids": [[3, 12]]}]},
        "outside the vocab",
    ),
    ([{"prefix_allowed_tokens": {"num_beams": 1}}], "takes a Python callable; build it in code"),
    ([{"sequence_bias": [[[1, 2], 1.0], [[1, 2], 3.0]]}], "sequence [1, 2] is listed twice"),
    ([{"forced_decoder_ids": [[1, 2], [1, 3]]}], "a position is listed twice"),
    ([{"bad_words_ids": [[3], []]}], "entry 1 is empty"),
    ([{"remove_invalid_values": 3}], "'remove_invalid_values' takes no value"),
    ([{"renormalize_logits": 0.5}], "'renormalize_logits' takes no value"),
    ([{"name": "renormalize_logits", "dim": 0}], "processors[0].dim: unknown field"),
]


@pytest.mark.parametrize(("config", "message"), CONTEXT_MISTAKES, ids=[m[:40] for _, m in CONTEXT_MISTAKES])
def test_mistakes_transformers_finds_late_are_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], config: Any, message: str) -> None:
    code, err = validate(tmp_path, config, capsys)
    assert code == 2
    assert message in err, err
    if "vocab" in message:
        assert "bad_words_ids" in err and "12" in err and "10" in err, err


def test_a_valid_config_with_every_processor_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = {
        "tokens": {"eos": [2], "bos": 1, "vocab_size": 100},
        "processors": [
            {"sequence_bias": [{"tokens": [4, 5], "bias": -1.0}, [[6], 0.5]]},
            {"encoder_repetition_penalty": 1.1},
            {"repetition_penalty": 1.2},
            {"no_repeat_ngram_size": 3},
            {"encoder_no_repeat_ngram_size": 4},
            {"bad_words_ids": [[7], [8, 9]]},
            {"min_length": 4},
            {"min_new_tokens": 2},
            {"forced_bos_token_id": 1},
            {"name": "forced_eos_token_id", "max_new_tokens": 50},
            "remove_invalid_values",
            {"name": "exponential_decay_length_penalty", "start_index": 20, "decay_factor": 1.05},
            {"suppress_tokens": [10]},
            {"begin_suppress_tokens": [11]},
            {"forced_decoder_ids": {"3": 12}},
            "renormalize_logits",
        ],
    }
    code, _ = validate(tmp_path, config, capsys)
    assert code == 0
