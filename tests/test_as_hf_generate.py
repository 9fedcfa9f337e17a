"""``pipe.as_hf()`` inside transformers' ``generate`` runs logitkit's processors and its selector."""

from __future__ import annotations

import pytest
import torch
from _generation_helpers import PAD, left_padded, tiny_llama

import logitkit
from logitkit import Pipeline

SAMPLE = {
    "processors": [{"temperature": 0.8}, {"top_k": 20}],
    "selector": {"name": "sample", "seed": 11},
}


@pytest.fixture(scope="module")
def llama() -> object:
    return tiny_llama()


@pytest.mark.parametrize(
    "hf_settings", [{"do_sample": False}, {"do_sample": True, "top_k": 3, "temperature": 1.7}]
)
def test_the_pipeline_selector_decides_whatever_transformers_is_told(llama, hf_settings) -> None:
    ids, mask = left_padded([5, 7, 3])
    ours = logitkit.generate(
        llama,
        ids,
        Pipeline.from_config(SAMPLE),
        attention_mask=mask,
        max_new_tokens=10,
        eos_token_id=[],
    )
    torch.manual_seed(0)
    theirs = llama.generate(
        ids, attention_mask=mask, logits_processor=Pipeline.from_config(SAMPLE).as_hf(), max_new_tokens=10,
        pad_token_id=PAD, eos_token_id=None, **hf_settings,
    )  # fmt: skip
    assert torch.equal(theirs, ours.sequences)


def test_without_the_selector_transformers_selects(llama) -> None:
    ids, mask = left_padded([5, 7, 3])
    greedy = llama.generate(
        ids,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=8,
        pad_token_id=PAD,
        eos_token_id=None,
    )
    processors = Pipeline.from_config(SAMPLE).as_hf(include_selector=False)
    out = llama.generate(
        ids, attention_mask=mask, do_sample=False, logits_processor=processors, max_new_tokens=8,
        pad_token_id=PAD, eos_token_id=None,
    )  # fmt: skip
    assert torch.equal(
        out, greedy
    )  # temperature and top_k keep the argmax; transformers' argmax picks


def test_multinomial_selector_in_greedy_transformers_equals_transformers_sampling(llama) -> None:
    ids, mask = left_padded([5, 7, 3])
    pipe = Pipeline.from_config(
        {"processors": [{"temperature": 0.8}, {"top_k": 20}], "selector": "multinomial"}
    )
    torch.manual_seed(3)
    ours = llama.generate(
        ids, attention_mask=mask, do_sample=False, logits_processor=pipe.as_hf(), max_new_tokens=10,
        pad_token_id=PAD, eos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(3)
    theirs = llama.generate(
        ids, attention_mask=mask, do_sample=True, temperature=0.8, top_k=20, max_new_tokens=10,
        pad_token_id=PAD, eos_token_id=None,
    )  # fmt: skip
    assert torch.equal(ours, theirs)
