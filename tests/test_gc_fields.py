"""Every GenerationConfig field is carried, warned about or refused by name, in both translation paths."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from transformers import GenerationConfig

from logitkit import ConfigError, Pipeline
from logitkit.formats import convert, gc_fields
from logitkit.formats.hf_translation import translate

DOCS = Path(__file__).resolve().parents[1] / "docs" / "generation-config.md"

#: A value that asks for something beyond the default, per refused field.
REFUSED_VALUES: dict[str, Any] = {
    "assistant_ensemble_weight": 0.5, "speculation_type": "dflash", "use_mtp": True, "generation_kwargs": {"x": 1},
}  # fmt: skip
#: Read from the assistant model's own generation config, as transformers does: named in a warning here.
ASSISTANT_VALUES: dict[str, Any] = {
    "num_assistant_tokens": 5, "num_assistant_tokens_schedule": "heuristic", "assistant_confidence_threshold": 0.2,
    "assistant_lookbehind": 3, "target_lookbehind": 3,
}  # fmt: skip
#: Decoding-mode and model-call fields: what each (with what it needs) becomes in ``generation:``.
CARRIED: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "penalty_alpha": ({"penalty_alpha": 0.6, "top_k": 4},
                      {"search": "contrastive_search", "search_options": {"penalty_alpha": 0.6, "top_k": 4}}),
    "low_memory": ({"penalty_alpha": 0.6, "top_k": 4, "low_memory": True},
                   {"search_options": {"penalty_alpha": 0.6, "top_k": 4, "low_memory": True}}),
    "dola_layers": ({"dola_layers": "low"}, {"search": "dola", "search_options": {"dola_layers": "low"}}),
    "force_words_ids": ({"force_words_ids": [[5]], "num_beams": 2},
                        {"search": "constrained_beam_search", "search_options": {"force_words_ids": [[5]]}}),
    "use_cache": ({"use_cache": False}, {"use_cache": False}),
    "cache_implementation": ({"cache_implementation": "static"}, {"cache_implementation": "static"}),
    "max_cache_len": ({"cache_implementation": "static", "max_cache_len": 64}, {"cache_config": {"max_cache_len": 64}}),
    "disable_compile": ({"disable_compile": True}, {"disable_compile": True}),
    "output_attentions": ({"output_attentions": True}, {"output_attentions": True}),
    "output_hidden_states": ({"output_hidden_states": True}, {"output_hidden_states": True}),
    "prompt_lookup_num_tokens": ({"prompt_lookup_num_tokens": 4, "max_matching_ngram_size": 2},
                                 {"search": "prompt_lookup", "search_options": {"num_tokens": 4, "max_ngram": 2}}),
    "assistant_early_exit": ({"assistant_early_exit": 1, "num_assistant_tokens": 3},
                             {"search": "early_exit",
                              "search_options": {"assistant_early_exit": 1, "num_assistant_tokens": 3}}),
}  # fmt: skip
NO_EFFECT_VALUES = {"return_dict_in_generate": True, "prefill_chunk_size": 64, "return_legacy_cache": True,
                    "continuous_batching_config": {"x": 1}, "is_assistant": True}  # fmt: skip


def with_field(name: str, value: Any) -> GenerationConfig:
    gc = GenerationConfig()
    setattr(gc, name, value)  # past GenerationConfig's own validation: the translation must judge it
    return gc


def test_every_field_of_the_installed_generation_config_has_a_place() -> None:
    fields = set(GenerationConfig().to_dict())
    assert fields - gc_fields.known_fields() == set()


def test_every_field_of_the_installed_generation_config_has_a_docs_row() -> None:
    text = DOCS.read_text(encoding="utf-8")
    first_cells = {m for line in text.splitlines() if line.startswith("| `")
                   for m in re.findall(r"`([^`]+)`", line.split("|")[1])}  # fmt: skip
    assert set(GenerationConfig().to_dict()) - first_cells == set()
    assert set(REFUSED_VALUES) | set(NO_EFFECT_VALUES) <= first_cells


def test_refusal_table_and_values_agree() -> None:
    assert set(REFUSED_VALUES) == set(gc_fields.REFUSED)
    assert set(NO_EFFECT_VALUES) == set(gc_fields.NO_EFFECT)


@pytest.mark.parametrize("name", sorted(REFUSED_VALUES))
def test_a_field_that_cannot_be_carried_is_refused_by_name(name: str) -> None:
    gc = with_field(name, REFUSED_VALUES[name])
    with pytest.raises(ConfigError, match=re.escape(name)):
        Pipeline.from_generation_config(gc)
    # logitkit convert reads through the same translation and reports it lost.
    assert name in [loss.parameter for loss in translate(gc).conversion.lost]


@pytest.mark.parametrize("name", sorted(CARRIED))
def test_decoding_mode_and_model_call_fields_are_carried(name: str) -> None:
    fields, expected = CARRIED[name]
    gc = GenerationConfig()
    for key, value in fields.items():
        setattr(gc, key, value)
    translation = translate(gc)
    assert not translation.refused and name not in [loss.parameter for loss in translation.conversion.lost]
    generation = translation.config["generation"]
    assert {key: generation.get(key) for key in expected} == expected
    Pipeline.from_generation_config(gc)  # builds: the settings validate


@pytest.mark.parametrize("name", sorted(ASSISTANT_VALUES))
def test_an_assistant_field_on_the_target_config_is_named_in_the_report(name: str) -> None:
    gc = with_field(name, ASSISTANT_VALUES[name])
    translation = translate(gc)
    assert not translation.refused
    assert name in [loss.parameter for loss in translation.conversion.lost]
    Pipeline.from_generation_config(gc)


@pytest.mark.parametrize("name", sorted(NO_EFFECT_VALUES))
def test_a_field_without_effect_is_named_in_a_warning(name: str, caplog: pytest.LogCaptureFixture) -> None:
    gc = with_field(name, NO_EFFECT_VALUES[name])
    with caplog.at_level(logging.WARNING, logger="logitkit.pipeline"):
        Pipeline.from_generation_config(gc)
    assert any(name in record.getMessage() for record in caplog.records)
    with pytest.raises(ConfigError, match=re.escape(name)):
        Pipeline.from_generation_config(gc, strict=True)


def test_a_default_config_is_carried_without_a_word(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        pipe = Pipeline.from_generation_config(GenerationConfig(use_cache=True, num_beams=1))
    assert caplog.records == []
    assert pipe.selector is not None and pipe.selector.name == "greedy"


def test_generation_settings_travel_with_the_pipeline_and_through_convert() -> None:
    settings = {"max_new_tokens": 7, "num_beams": 4, "length_penalty": 0.5, "early_stopping": "never",
                "num_return_sequences": 2, "max_time": 3.0, "output_scores": True, "output_logits": True,
                "stop_strings": ["##"], "token_healing": True}  # fmt: skip
    pipe = Pipeline.from_generation_config(settings)
    assert pipe.generation.model_dump(exclude_unset=True) == settings
    assert convert(settings, "generation_config", "logitkit").value["generation"] == settings


def test_sampling_defaults_to_multinomial_with_the_implicit_top_k_and_sample_is_one_setting_away() -> None:
    pipe = Pipeline.from_generation_config({"do_sample": True})
    assert [p.name for p in pipe.processors] == ["top_k"] and pipe.processors[0].config.top_k == 50
    assert pipe.selector is not None and pipe.selector.name == "multinomial"
    gumbel = Pipeline.from_generation_config({"do_sample": True}, selector="sample")
    assert gumbel.selector is not None and gumbel.selector.name == "sample"
    beams = Pipeline.from_generation_config({"do_sample": True, "num_beams": 3})
    assert beams.generation.search == "beam_sample"


def test_group_beam_search_cannot_sample() -> None:
    with pytest.raises(ConfigError, match="do_sample"):
        Pipeline.from_generation_config(
            GenerationConfig(do_sample=True, num_beams=4, num_beam_groups=2, diversity_penalty=0.5)
        )


def test_generate_takes_a_pipeline_or_a_generation_config_not_both() -> None:
    import torch

    import logitkit

    def model(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.zeros(ids.shape[0], 8)

    with pytest.raises(ValueError, match="not both"):
        logitkit.generate(model, torch.tensor([[1, 2]]), Pipeline.from_config([]), generation_config={"max_new_tokens": 2})
    out = logitkit.generate(model, torch.tensor([[1, 2]]), generation_config={"max_new_tokens": 3}, eos_token_id=[])
    assert out.new_tokens.shape == (1, 3)  # the config's max_new_tokens, no keyword


def test_two_searches_in_one_config_are_refused_by_name() -> None:
    gc = GenerationConfig(do_sample=True, num_beams=2, prompt_lookup_num_tokens=3)
    with pytest.raises(ConfigError, match="beam_sample and prompt_lookup cannot run together"):
        Pipeline.from_generation_config(gc)


@pytest.mark.parametrize(
    ("fields", "kept", "dropped"),
    [
        ({"cache_config": {"max_cache_len": 64}}, None, ["cache_config.max_cache_len"]),
        ({"cache_implementation": "static", "cache_config": {"max_cache_len": 64, "nbits": 4}},
         {"max_cache_len": 64}, ["cache_config.nbits"]),
        ({"cache_implementation": "quantized", "cache_config": {"backend": "hqq", "nbits": 4}},
         {"backend": "hqq", "nbits": 4}, []),
    ],
)  # fmt: skip
def test_cache_options_transformers_ignores_are_dropped_by_name(
    fields: dict[str, object], kept: dict[str, object] | None, dropped: list[str]
) -> None:
    """5.24 reads cache_config only for a quantized cache (a static one takes max_cache_len): the rest is named."""
    translation = translate(GenerationConfig(**fields))
    assert translation.config.get("generation", {}).get("cache_config") == kept
    lost = [loss.parameter for loss in translation.conversion.lost]
    assert [name for name in lost if name.startswith("cache_config")] == dropped
    assert not translation.refused
