"""Whisper- and Llama-3-style generation configs through every format and back: every loss is reported.

Nothing can be downloaded, so the configs are written here, after the files
those models publish (Whisper's suppress list shortened).
"""

from __future__ import annotations

from typing import Any

import pytest

from logitkit import Pipeline
from logitkit.formats import FORMATS, Loss, convert

WHISPER: dict[str, Any] = {
    "begin_suppress_tokens": [220, 50257], "bos_token_id": 50257, "decoder_start_token_id": 50258,
    "eos_token_id": 50257, "forced_decoder_ids": [[1, None], [2, 50359]], "is_multilingual": True,
    "lang_to_id": {"<|en|>": 50259}, "max_initial_timestamp_index": 50, "max_length": 448,
    "no_timestamps_token_id": 50363, "pad_token_id": 50257, "prev_sot_token_id": 50361,
    "return_timestamps": False, "suppress_tokens": [1, 2, 7, 50358, 50359, 50360],
    "task_to_id": {"transcribe": 50359, "translate": 50358}, "transformers_version": "4.31.0",
}  # fmt: skip
LLAMA_3: dict[str, Any] = {
    "bos_token_id": 128000, "do_sample": True, "eos_token_id": [128001, 128008, 128009],
    "temperature": 0.6, "top_p": 0.9, "transformers_version": "4.45.0",
}  # fmt: skip
WHISPER_ONLY = {
    "is_multilingual", "lang_to_id", "max_initial_timestamp_index", "no_timestamps_token_id",
    "prev_sot_token_id", "return_timestamps", "task_to_id",
}  # fmt: skip
TOKEN_FIELDS = {"eos_token_id", "bos_token_id", "pad_token_id", "decoder_start_token_id"}


def normalized(gc: dict[str, Any]) -> dict[str, Any]:
    """The fields that carry meaning, in one spelling: eos as a list, no free forced positions."""
    out = {k: v for k, v in gc.items() if k != "transformers_version"}
    out.setdefault("do_sample", False)
    if out["do_sample"]:
        out.setdefault("top_k", 50)  # transformers' implicit top_k under do_sample
    if isinstance(out.get("eos_token_id"), int):
        out["eos_token_id"] = [out["eos_token_id"]]
    if "forced_decoder_ids" in out:
        out["forced_decoder_ids"] = [list(p) for p in out["forced_decoder_ids"] if p[1] is not None]
    return out


def reported(field: str, losses: list[Loss]) -> bool:
    """A loss names the field, or the logitkit section the field lives in."""
    return any(
        field in loss.parameter
        or (field in TOKEN_FIELDS and loss.parameter.startswith("tokens"))
        or (field == "max_length" and loss.parameter == "generation.max_length")
        for loss in losses
    )


@pytest.mark.parametrize("gc", [WHISPER, LLAMA_3], ids=["whisper", "llama-3"])
@pytest.mark.parametrize("middle", FORMATS)
def test_every_field_comes_back_or_is_reported_lost(gc: dict[str, Any], middle: str) -> None:
    there = convert(gc, "generation_config", middle)
    back = convert(there.value, middle, "generation_config")
    losses = there.lost + back.lost
    before, after = normalized(gc), normalized(back.value)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    unreported = sorted(k for k in changed if not reported(k, losses))
    assert unreported == [], (unreported, there.value, back.value, losses)
    # Nothing is reported lost that came back intact (the report is exact, not a blanket).
    intact = {k for k in before if k not in changed and k not in WHISPER_ONLY}
    assert not [k for k in intact if any(loss.parameter in (k, f"processors.{k}") for loss in losses)]


@pytest.mark.parametrize("middle", ["logitkit", "generation_config"])
def test_whisper_loses_only_its_own_fields_through_logitkit_and_hf(middle: str) -> None:
    there = convert(WHISPER, "generation_config", middle)
    back = convert(there.value, middle, "generation_config")
    assert {loss.parameter for loss in there.lost + back.lost} == WHISPER_ONLY
    assert normalized(back.value) == normalized({k: v for k, v in WHISPER.items() if k not in WHISPER_ONLY})


def test_llama_3_round_trips_without_loss_through_logitkit_and_hf() -> None:
    for middle in ("logitkit", "generation_config"):
        there = convert(LLAMA_3, "generation_config", middle)
        back = convert(there.value, middle, "generation_config")
        assert there.lost == back.lost == []
        assert normalized(back.value) == normalized(LLAMA_3)


def test_whisper_forces_its_task_token_over_the_suppress_list() -> None:
    pipe = Pipeline.from_generation_config(WHISPER)
    import torch

    ids = torch.tensor([[50258, 50259]])  # decoder start, a language token: position 2 is the task
    scores = torch.zeros(1, 50365)
    out = pipe(ids, scores)
    assert out.argmax(-1).item() == 50359 and torch.isfinite(out).sum().item() == 1


def test_a_greedy_config_stays_greedy_in_openai_and_llama_cpp() -> None:
    greedy = {"processors": [{"repetition_penalty": 1.2}]}  # no temperature or truncation: greedy
    openai = convert(greedy, "logitkit", "openai")
    assert openai.value["temperature"] == 0
    llama = convert(greedy, "logitkit", "llama.cpp")
    assert llama.value["samplers"] == "penalties;temperature" and llama.value["temperature"] == 0.0
    for fmt, value in (("openai", openai.value), ("llama.cpp", llama.value)):
        assert convert(value, fmt, "generation_config").value["do_sample"] is False, fmt


def test_an_empty_llama_cpp_chain_reads_back_as_plain_sampling() -> None:
    back = convert({"samplers": ""}, "llama.cpp", "logitkit")
    assert back.value == {"processors": [], "selector": "sample"} and back.lost == []
