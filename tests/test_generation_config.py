"""Pipeline.from_generation_config builds what transformers' _get_logits_processor builds, in the same order."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel

from logitkit import ConfigError, Pipeline
from logitkit.formats.hf_processors import to_config

VOCAB = 64


@pytest.fixture(scope="module")
def model() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=VOCAB, n_positions=128, n_embd=16, n_layer=1, n_head=2)
    return GPT2LMHeadModel(config).eval()


def hf_processors(model: GPT2LMHeadModel, gc: GenerationConfig, prompt_length: int, **kwargs: Any) -> Any:
    """transformers' list as generate() builds it: defaults filled in, min_length rewritten from min_new_tokens."""
    gc = copy.deepcopy(gc)
    gc.update(**gc._get_default_generation_params(), defaults_only=True)
    if gc.min_new_tokens is not None:
        gc.min_length = gc.min_new_tokens + prompt_length  # _prepare_generated_length
    model._prepare_special_tokens(gc, kwargs_has_attention_mask=True, device="cpu")
    return model._get_logits_processor(gc, input_ids_seq_length=prompt_length, device="cpu", **kwargs)


# remove_invalid_values is left out here: after min_length's -inf becomes the dtype's lowest value, the
# exponential decay overflows it to +inf and transformers' renormalization returns nan rows.
MANY = {
    "eos_token_id": [2, 5],
    "sequence_bias": [[[3, 4], -1.5], [[9], 2.0]],
    "repetition_penalty": 1.3,
    "no_repeat_ngram_size": 2,
    "bad_words_ids": [[7], [1, 6], [5]],
    "min_length": 12,
    "min_new_tokens": 3,
    "forced_eos_token_id": 2,
    "max_length": 14,
    "exponential_decay_length_penalty": [2, 1.4],
    "suppress_tokens": [11, 12],
    "begin_suppress_tokens": [13],
    "do_sample": True,
    "temperature": 0.8,
    "top_k": 20,
    "top_p": 0.9,
    "min_p": 0.02,
    "renormalize_logits": True,
}


def run_both(model: GPT2LMHeadModel, gc: GenerationConfig, steps: int = 6, batch: int = 4, prompt: int = 5,
             hf_kwargs: dict[str, Any] | None = None, **context: Any) -> None:  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 8, (batch, prompt), generator=gen)
    # generate() hands a decoder-only model's prompt to the encoder processors.
    theirs = hf_processors(model, gc, prompt, **{"encoder_input_ids": ids, **(hf_kwargs or {})})
    pipe = Pipeline.from_generation_config(gc, input_ids_seq_length=prompt, model=model, **context)
    assert [p.name for p in pipe.processors] == [names_of(p) for p in theirs], pipe
    # transformers' list keeps state between calls (guidance's branch); a batch state does that here.
    state = pipe.start(ids)
    for _ in range(steps):
        scores = torch.randn(batch, VOCAB, generator=gen) * 3
        expected = theirs(ids, scores.clone())
        assert not torch.isnan(expected).any(), "a nan reference would hide differences"
        ours = state(ids, scores)
        # A call on its own gives the same for every processor whose result follows from the history.
        if not pipe.stateful:
            assert torch.equal(pipe(ids, scores), ours)
        assert torch.equal(torch.isneginf(ours), torch.isneginf(expected))
        finite = torch.isfinite(expected)
        torch.testing.assert_close(ours[finite], expected[finite], rtol=1e-5, atol=1e-6)
        chosen = torch.randint(0, 8, (batch,), generator=gen)
        state.accept(chosen)
        ids = torch.cat([ids, chosen.unsqueeze(-1)], dim=1)


HF_NAMES = {
    "SequenceBiasLogitsProcessor": "sequence_bias",
    "EncoderRepetitionPenaltyLogitsProcessor": "encoder_repetition_penalty",
    "RepetitionPenaltyLogitsProcessor": "repetition_penalty",
    "NoRepeatNGramLogitsProcessor": "no_repeat_ngram_size",
    "EncoderNoRepeatNGramLogitsProcessor": "encoder_no_repeat_ngram_size",
    "NoBadWordsLogitsProcessor": "bad_words_ids",
    "MinLengthLogitsProcessor": "min_length",
    "MinNewTokensLengthLogitsProcessor": "min_new_tokens",
    "PrefixConstrainedLogitsProcessor": "prefix_allowed_tokens",
    "ForcedBOSTokenLogitsProcessor": "forced_bos_token_id",
    "ForcedEOSTokenLogitsProcessor": "forced_eos_token_id",
    "InfNanRemoveLogitsProcessor": "remove_invalid_values",
    "ExponentialDecayLengthPenalty": "exponential_decay_length_penalty",
    "SuppressTokensLogitsProcessor": "suppress_tokens",
    "SuppressTokensAtBeginLogitsProcessor": "begin_suppress_tokens",
    "TemperatureLogitsWarper": "temperature",
    "TopHLogitsWarper": "top_h",
    "TopKLogitsWarper": "top_k",
    "TopPLogitsWarper": "top_p",
    "MinPLogitsWarper": "min_p",
    "TypicalLogitsWarper": "typical_p",
    "EpsilonLogitsWarper": "epsilon_cutoff",
    "EtaLogitsWarper": "eta_cutoff",
    "LogitNormalization": "renormalize_logits",
    "UnbatchedClassifierFreeGuidanceLogitsProcessor": "guidance_scale",
    "WatermarkLogitsProcessor": "watermarking",
    "SynthIDTextWatermarkLogitsProcessor": "watermarking",
}


def names_of(processor: Any) -> str:
    return HF_NAMES[type(processor).__name__]


def test_many_processors_at_once_match_transformers_list(model: GPT2LMHeadModel) -> None:
    run_both(model, GenerationConfig(**MANY), steps=10)


def test_remove_invalid_values_with_masks_and_sampling(model: GPT2LMHeadModel) -> None:
    gc = GenerationConfig(eos_token_id=2, min_new_tokens=3, bad_words_ids=[[4]], remove_invalid_values=True,
                          suppress_tokens=[6], do_sample=True, top_p=0.8, min_p=0.05, renormalize_logits=True)  # fmt: skip
    run_both(model, gc)


def test_left_padding_is_skipped_by_the_repetition_penalty_as_in_generate(model: GPT2LMHeadModel) -> None:
    mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    gc = GenerationConfig(repetition_penalty=2.5)
    run_both(model, gc, hf_kwargs={"model_kwargs": {"attention_mask": mask}}, attention_mask=mask)


def test_encoder_processors_with_encoder_ids(model: GPT2LMHeadModel) -> None:
    encoder = torch.randint(0, 8, (2, 9), generator=torch.Generator().manual_seed(3))
    gc = GenerationConfig(encoder_repetition_penalty=1.7, encoder_no_repeat_ngram_size=2, num_beams=2)
    # Two rows per prompt (beam-style), as generate() expands them.
    run_both(model, gc, hf_kwargs={"encoder_input_ids": encoder}, encoder_input_ids=encoder)


def test_encoder_processors_read_the_prompt_without_encoder_ids_as_transformers_5(model: GPT2LMHeadModel) -> None:
    gc = GenerationConfig(encoder_repetition_penalty=1.7, encoder_no_repeat_ngram_size=2)
    run_both(model, gc)  # transformers' side gets the prompt as encoder_input_ids, as generate() passes it


@pytest.mark.filterwarnings("ignore:Passing `encoder")
def test_encoder_processors_are_left_out_with_dummy_encoder_ids_as_in_transformers(model: GPT2LMHeadModel) -> None:
    dummy = torch.full((4, 3), -100)
    gc = GenerationConfig(encoder_repetition_penalty=1.7, encoder_no_repeat_ngram_size=2)
    run_both(model, gc, hf_kwargs={"encoder_input_ids": dummy}, encoder_input_ids=dummy)


def test_beam_sampling_keeps_one_token_per_eos_plus_one(model: GPT2LMHeadModel) -> None:
    gc = GenerationConfig(do_sample=True, num_beams=3, top_k=1, top_p=0.1, eos_token_id=[2, 3])
    entries = {e["name"]: e for e in to_config(gc)["processors"]}
    assert entries["top_k"]["min_tokens_to_keep"] == 3
    run_both(model, gc)


def test_sampling_warpers_only_with_do_sample_and_transformers_conditions(model: GPT2LMHeadModel) -> None:
    greedy = GenerationConfig(do_sample=False, temperature=0.5, top_k=5)
    assert to_config(greedy)["processors"] == []
    assert to_config(greedy)["selector"] == "greedy"
    neutral = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, typical_p=1.0, epsilon_cutoff=0.0)
    assert to_config(neutral)["processors"] == []
    run_both(model, GenerationConfig(do_sample=True, temperature=0.6, typical_p=0.9, epsilon_cutoff=3e-4, eta_cutoff=1e-3))


def test_prefix_constraint_sits_where_transformers_puts_it(model: GPT2LMHeadModel) -> None:
    def allowed(batch_id: int, ids: torch.Tensor) -> list[int]:
        return [int(ids[-1]), (int(ids[-1]) + 1 + batch_id) % VOCAB, 2]

    gc = GenerationConfig(min_new_tokens=2, eos_token_id=2, forced_bos_token_id=4, suppress_tokens=[9], num_beams=2, num_return_sequences=1)
    run_both(model, gc, hf_kwargs={"prefix_allowed_tokens_fn": allowed}, prefix_allowed_tokens_fn=allowed)


def test_begin_suppress_moves_one_step_after_a_forced_bos_on_a_one_token_prompt(model: GPT2LMHeadModel) -> None:
    gc = GenerationConfig(begin_suppress_tokens=[3, 4], forced_bos_token_id=5)
    run_both(model, gc, prompt=1, steps=3)
    entry = next(e for e in to_config(gc, input_ids_seq_length=1)["processors"] if e["name"] == "begin_suppress_tokens")
    assert entry["begin_step"] == 1


def test_accepts_a_dict_and_a_path(tmp_path: Path, model: GPT2LMHeadModel) -> None:
    path = tmp_path / "generation_config.json"
    path.write_text(json.dumps(MANY))
    from_path = Pipeline.from_generation_config(path, input_ids_seq_length=5)
    from_folder = Pipeline.from_generation_config(tmp_path, input_ids_seq_length=5)
    from_dict = Pipeline.from_generation_config(dict(MANY), input_ids_seq_length=5)
    names = [p.name for p in Pipeline.from_generation_config(GenerationConfig(**MANY), input_ids_seq_length=5).processors]
    for pipe in (from_path, from_folder, from_dict):
        assert [p.name for p in pipe.processors] == names


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        Pipeline.from_generation_config(tmp_path / "nope.json")


def test_forced_eos_without_a_length_uses_the_default_of_20_new_tokens() -> None:
    entry = next(e for e in to_config(GenerationConfig(forced_eos_token_id=2))["processors"])
    assert entry["max_new_tokens"] == 20
    both = to_config(GenerationConfig(forced_eos_token_id=2, max_length=30, max_new_tokens=7))["processors"][0]
    assert both["max_new_tokens"] == 7 and "max_length" not in both  # max_new_tokens wins, as in transformers 5


def test_exponential_decay_without_eos_is_caught_before_generation() -> None:
    with pytest.raises(ConfigError, match="eos"):
        Pipeline.from_generation_config({"exponential_decay_length_penalty": [3, 1.2]})


def test_guidance_and_watermarking_are_translated_by_name() -> None:
    gc = GenerationConfig(guidance_scale=1.5, watermarking_config={"bias": 2.5, "context_width": 1}, renormalize_logits=True)
    names = [e["name"] for e in to_config(gc)["processors"]]
    assert names == ["guidance_scale", "watermarking", "renormalize_logits"]
    watermark = to_config(gc)["processors"][1]
    assert watermark["bias"] == 2.5 and watermark["context_width"] == 1


@pytest.mark.parametrize(
    "watermark",
    [{"bias": 2.5, "context_width": 2, "seeding_scheme": "selfhash"}, {"bias": 1.0, "greenlist_ratio": 0.5}],
    ids=["selfhash", "lefthash"],
)
def test_watermarking_after_the_warpers_and_before_renormalization(model: GPT2LMHeadModel, watermark: dict[str, Any]) -> None:
    gc = GenerationConfig(repetition_penalty=1.2, do_sample=True, top_k=30, watermarking_config=watermark, renormalize_logits=True)
    run_both(model, gc, steps=4)


def test_guidance_runs_first_with_the_model_from_the_context(model: GPT2LMHeadModel) -> None:
    # use_cache is explicit: generate() fills it in, and a bare _get_logits_processor call would pass None.
    gc = GenerationConfig(guidance_scale=1.5, repetition_penalty=1.3, do_sample=True, temperature=0.7, use_cache=True)
    run_both(model, gc, steps=4, batch=1)


def test_inside_generate_the_pipeline_gives_transformers_tokens(model: GPT2LMHeadModel) -> None:
    """Greedy decoding: generate() with logitkit's pipeline equals generate() with transformers' own processors."""
    settings = {"repetition_penalty": 1.5, "no_repeat_ngram_size": 2, "bad_words_ids": [[3, 4]], "min_new_tokens": 4,
                "suppress_tokens": [7], "sequence_bias": [[[9], 1.0]]}  # fmt: skip
    ids = torch.randint(0, VOCAB, (3, 6), generator=torch.Generator().manual_seed(11))
    common = {"max_new_tokens": 12, "do_sample": False, "eos_token_id": 2, "pad_token_id": 0}
    theirs = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=GenerationConfig(**common, **settings))
    pipe = Pipeline.from_generation_config({**common, **settings}, input_ids_seq_length=ids.shape[1])
    ours = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=GenerationConfig(**common),
                          logits_processor=pipe.as_hf())  # fmt: skip
    assert torch.equal(ours, theirs)
    plain = model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=GenerationConfig(**common))
    assert not torch.equal(plain, theirs), "the processors changed nothing; the test would prove nothing"


def test_forced_decoder_ids_from_an_older_generation_config_are_kept() -> None:
    pipe = Pipeline.from_generation_config({"forced_decoder_ids": [[1, 5], [2, 7]], "suppress_tokens": [3]})
    assert [p.name for p in pipe.processors] == ["suppress_tokens", "forced_decoder_ids"]
    scores = torch.randn(2, 10)
    out = pipe(torch.zeros(2, 2, dtype=torch.long), scores)
    assert out.argmax(-1).tolist() == [7, 7] and torch.isinf(out).sum() == 18
