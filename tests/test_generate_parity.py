"""logitkit.generate against transformers' generate on tiny random models: same token ids.

Differential tests: the same model, prompts and settings go through
transformers' ``model.generate`` and through ``logitkit.generate``.
"""

from __future__ import annotations

import pytest
import torch
from _generation_helpers import PAD, frequent_tokens, left_padded, tiny_gpt2, tiny_llama, tiny_t5

import logitkit
from logitkit import Pipeline


@pytest.fixture(scope="module")
def llama() -> object:
    return tiny_llama()


@pytest.fixture(scope="module")
def t5() -> object:
    return tiny_t5()


@pytest.fixture(scope="module")
def prompts() -> tuple[torch.Tensor, torch.Tensor]:
    return left_padded([5, 7, 3, 7])


@pytest.fixture(scope="module")
def llama_eos(llama: object, prompts: tuple[torch.Tensor, torch.Tensor]) -> list[int]:
    # Tokens the model really emits, so rows do end with eos.
    return frequent_tokens(llama, *prompts, n=2)


@pytest.fixture(scope="module")
def t5_eos(t5: object, prompts: tuple[torch.Tensor, torch.Tensor]) -> list[int]:
    return frequent_tokens(t5, *prompts, n=2)


def test_greedy_matches_transformers_causal_lm_with_left_padding(llama, prompts, llama_eos) -> None:
    ids, mask = prompts
    ref = llama.generate(
        ids,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=14,
        eos_token_id=llama_eos,
        pad_token_id=PAD,
    )
    out = logitkit.generate(
        llama,
        ids,
        None,
        attention_mask=mask,
        max_new_tokens=14,
        eos_token_id=llama_eos,
        pad_token_id=PAD,
    )
    assert torch.equal(out.sequences, ref)
    assert "eos" in out.finish_reasons  # the case is not vacuous


def test_greedy_matches_transformers_gpt2() -> None:
    gpt2 = tiny_gpt2()
    ids, _ = left_padded([6, 6, 6])
    ref = gpt2.generate(
        ids, do_sample=False, max_new_tokens=10, pad_token_id=PAD, eos_token_id=None
    )
    out = logitkit.generate(gpt2, ids, None, max_new_tokens=10, pad_token_id=PAD, eos_token_id=[])
    assert torch.equal(out.sequences, ref)
    assert out.finish_reasons == ["length"] * 3


def test_greedy_matches_transformers_encoder_decoder(t5, prompts, t5_eos) -> None:
    ids, mask = prompts
    ref = t5.generate(
        ids, attention_mask=mask, do_sample=False, max_new_tokens=12, eos_token_id=t5_eos
    )
    out = logitkit.generate(
        t5, ids, None, attention_mask=mask, max_new_tokens=12, eos_token_id=t5_eos
    )
    assert torch.equal(out.sequences, ref)
    assert out.sequences[0, 0].item() == t5.config.decoder_start_token_id


@pytest.mark.parametrize(
    ("num_beams", "length_penalty", "early_stopping", "num_return_sequences"),
    [
        (2, 1.0, False, 1),
        (3, 0.5, True, 2),
        (4, 2.0, "never", 3),
        (3, -1.0, "never", 1),
        (4, 1.0, True, 4),
        (2, 0.0, False, 2),
    ],
)
def test_beam_search_matches_transformers_causal_lm(
    llama, prompts, llama_eos, num_beams, length_penalty, early_stopping, num_return_sequences
) -> None:
    ids, mask = prompts
    settings = dict(
        num_beams=num_beams, length_penalty=length_penalty, early_stopping=early_stopping,
        num_return_sequences=num_return_sequences, max_new_tokens=10,
    )  # fmt: skip
    ref = llama.generate(
        ids, attention_mask=mask, do_sample=False, eos_token_id=llama_eos, pad_token_id=PAD,
        output_scores=True, return_dict_in_generate=True, **settings,
    )  # fmt: skip
    out = logitkit.generate(
        llama, ids, None, attention_mask=mask, eos_token_id=llama_eos, pad_token_id=PAD, **settings
    )
    assert torch.equal(out.sequences, ref.sequences)
    assert torch.allclose(out.sequences_scores, ref.sequences_scores)
    assert len(out.finish_reasons) == ids.shape[0] * num_return_sequences


@pytest.mark.parametrize(
    ("num_beams", "length_penalty", "early_stopping"),
    [(2, 1.0, False), (3, 0.5, True), (4, 2.0, "never")],
)
def test_beam_search_matches_transformers_encoder_decoder(
    t5, prompts, t5_eos, num_beams, length_penalty, early_stopping
) -> None:
    ids, mask = prompts
    settings = dict(
        num_beams=num_beams,
        length_penalty=length_penalty,
        early_stopping=early_stopping,
        max_new_tokens=9,
    )
    ref = t5.generate(ids, attention_mask=mask, do_sample=False, eos_token_id=t5_eos, **settings)
    out = logitkit.generate(t5, ids, None, attention_mask=mask, eos_token_id=t5_eos, **settings)
    assert torch.equal(out.sequences, ref)


def test_beam_search_finish_reasons_say_eos_where_the_beam_ended_with_eos(
    llama, prompts, llama_eos
) -> None:
    ids, mask = prompts
    out = logitkit.generate(
        llama,
        ids,
        None,
        attention_mask=mask,
        eos_token_id=llama_eos,
        pad_token_id=PAD,
        num_beams=3,
        max_new_tokens=10,
    )
    for row, reason in zip(out.new_tokens, out.finish_reasons, strict=True):
        ended_with_eos = any(int(t) in llama_eos for t in row)
        assert (reason == "eos") == ended_with_eos
    assert "eos" in out.finish_reasons


def test_processors_see_log_softmax_in_beam_search_like_transformers(
    llama, prompts, llama_eos
) -> None:
    ids, mask = prompts
    pipe = Pipeline.from_config([{"repetition_penalty": 1.3}, {"no_repeat_ngram_size": 2}])
    ref = llama.generate(
        ids, attention_mask=mask, do_sample=False, num_beams=3, max_new_tokens=10, eos_token_id=llama_eos,
        pad_token_id=PAD, repetition_penalty=1.3, no_repeat_ngram_size=2,
    )  # fmt: skip
    out = logitkit.generate(
        llama,
        ids,
        pipe,
        attention_mask=mask,
        num_beams=3,
        max_new_tokens=10,
        eos_token_id=llama_eos,
        pad_token_id=PAD,
    )
    assert torch.equal(out.sequences, ref)


def test_scores_and_logits_match_transformers(llama, prompts) -> None:
    ids, mask = prompts
    pipe = Pipeline.from_config([{"repetition_penalty": 1.2}])
    ref = llama.generate(
        ids, attention_mask=mask, do_sample=False, max_new_tokens=5, pad_token_id=PAD, eos_token_id=None,
        repetition_penalty=1.2, output_scores=True, output_logits=True, return_dict_in_generate=True,
    )  # fmt: skip
    out = logitkit.generate(
        llama, ids, pipe, attention_mask=mask, max_new_tokens=5, pad_token_id=PAD, eos_token_id=[],
        output_scores=True, output_logits=True,
    )  # fmt: skip
    assert torch.equal(out.sequences, ref.sequences)
    assert len(out.scores) == len(ref.scores) == 5
    # Same model calls; CPU matmuls may differ in the last bit between calls (buffer alignment).
    for ours, theirs in zip(out.scores, ref.scores, strict=True):
        assert torch.allclose(ours, theirs, rtol=0, atol=1e-6)
    for ours, theirs in zip(out.logits, ref.logits, strict=True):
        assert torch.allclose(ours, theirs, rtol=0, atol=1e-6)


@pytest.mark.parametrize("num_return_sequences", [1, 3])
def test_multinomial_matches_transformers_sampling_under_the_same_seed(
    llama, prompts, llama_eos, num_return_sequences
) -> None:
    ids, mask = prompts
    pipe = Pipeline.from_config(
        {
            "processors": [{"temperature": 0.8}, {"top_k": 50}, {"top_p": 0.9}],
            "selector": "multinomial",
        }
    )
    torch.manual_seed(1234)
    ref = llama.generate(
        ids, attention_mask=mask, do_sample=True, temperature=0.8, top_k=50, top_p=0.9, max_new_tokens=16,
        eos_token_id=llama_eos, pad_token_id=PAD, num_return_sequences=num_return_sequences,
    )  # fmt: skip
    torch.manual_seed(1234)
    out = logitkit.generate(
        llama, ids, pipe, attention_mask=mask, max_new_tokens=16, eos_token_id=llama_eos, pad_token_id=PAD,
        num_return_sequences=num_return_sequences,
    )  # fmt: skip
    assert torch.equal(out.sequences, ref)


def test_multinomial_matches_transformers_on_an_encoder_decoder(t5, prompts, t5_eos) -> None:
    ids, mask = prompts
    pipe = Pipeline.from_config(
        {"processors": [{"temperature": 1.3}, {"top_k": 20}], "selector": "multinomial"}
    )
    torch.manual_seed(7)
    ref = t5.generate(
        ids,
        attention_mask=mask,
        do_sample=True,
        temperature=1.3,
        top_k=20,
        max_new_tokens=10,
        eos_token_id=t5_eos,
        num_return_sequences=2,
    )
    torch.manual_seed(7)
    out = logitkit.generate(
        t5,
        ids,
        pipe,
        attention_mask=mask,
        max_new_tokens=10,
        eos_token_id=t5_eos,
        num_return_sequences=2,
    )
    assert torch.equal(out.sequences, ref)
    # the encoder ids reach processors, one copy per returned sequence
    assert out.sequences.shape[0] == 2 * ids.shape[0]


def test_plain_callable_without_cache_gives_the_cached_greedy_tokens(llama) -> None:
    ids, mask = left_padded(
        [6, 6, 6]
    )  # unpadded: a plain forward numbers positions 0..n-1 as the cache does

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return llama(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    cached = logitkit.generate(
        llama, ids, None, attention_mask=mask, max_new_tokens=12, eos_token_id=[]
    )
    plain = logitkit.generate(
        forward, ids, None, attention_mask=mask, max_new_tokens=12, eos_token_id=[]
    )
    assert torch.equal(plain.sequences, cached.sequences)
    beams_cached = logitkit.generate(
        llama, ids, None, max_new_tokens=8, eos_token_id=[], num_beams=3
    )
    beams_plain = logitkit.generate(
        forward, ids, None, max_new_tokens=8, eos_token_id=[], num_beams=3
    )
    assert torch.equal(beams_plain.sequences, beams_cached.sequences)


def test_plain_callable_with_left_padding_matches_cache(llama, prompts) -> None:
    ids, mask = prompts

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return llama(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits

    cached = logitkit.generate(
        llama, ids, None, attention_mask=mask, max_new_tokens=8, eos_token_id=[]
    )
    plain = logitkit.generate(
        forward, ids, None, attention_mask=mask, max_new_tokens=8, eos_token_id=[]
    )
    assert torch.equal(plain.sequences, cached.sequences)


def test_settings_come_from_the_pipeline_generation_section(llama, prompts) -> None:
    ids, mask = prompts
    pipe = Pipeline.from_config(
        {"processors": [], "generation": {"max_new_tokens": 4, "num_beams": 2}}
    )
    out = logitkit.generate(llama, ids, pipe, attention_mask=mask, eos_token_id=[])
    ref = llama.generate(
        ids,
        attention_mask=mask,
        do_sample=False,
        max_new_tokens=4,
        num_beams=2,
        eos_token_id=None,
        pad_token_id=PAD,
    )
    assert torch.equal(out.sequences, ref)
    # keyword arguments override the section
    longer = logitkit.generate(
        llama, ids, pipe, attention_mask=mask, eos_token_id=[], max_new_tokens=6
    )
    assert longer.new_tokens.shape[1] == 6


def test_encoder_side_processors_read_the_encoder_ids(t5, prompts, t5_eos) -> None:
    ids, mask = prompts
    pipe = Pipeline.from_config(
        [{"encoder_repetition_penalty": 3.0}, {"encoder_no_repeat_ngram_size": 2}]
    )
    settings = dict(max_new_tokens=10, eos_token_id=t5_eos)
    ref = t5.generate(
        ids,
        attention_mask=mask,
        do_sample=False,
        encoder_repetition_penalty=3.0,
        encoder_no_repeat_ngram_size=2,
        **settings,
    )
    plain = logitkit.generate(t5, ids, None, attention_mask=mask, **settings)
    out = logitkit.generate(t5, ids, pipe, attention_mask=mask, **settings)
    assert torch.equal(out.sequences, ref)
    assert not torch.equal(out.sequences, plain.sequences)  # the processors did something
    beams = logitkit.generate(t5, ids, pipe, attention_mask=mask, num_beams=3, **settings)
    ref_beams = t5.generate(
        ids,
        attention_mask=mask,
        do_sample=False,
        num_beams=3,
        encoder_repetition_penalty=3.0,
        encoder_no_repeat_ngram_size=2,
        **settings,
    )
    assert torch.equal(beams.sequences, ref_beams)
