"""Parameter formats: the README example round-trips between logitkit, generation_config.json, OpenAI and llama.cpp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from logitkit import ConfigError, Pipeline
from logitkit.cli import main
from logitkit.formats import FORMATS, Loss, canonical, convert, from_llama_cpp, parse_samplers
from logitkit.registry import Registry

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "seed-walkthrough.yaml"
README_CONFIG = {
    "processors": [{"temperature": 0.8}, {"top_k": 50}, {"top_p": 0.9}, {"min_p": 0.01}]
}
#: Read back from a generation_config.json, do_sample is transformers' own draw (docs/generation-config.md).
FROM_HF_CONFIG = {**README_CONFIG, "selector": "multinomial"}
OPENAI_LOSSES = [
    Loss("processors.top_k", "OpenAI has no top_k parameter"),
    Loss("processors.min_p", "OpenAI has no min_p parameter"),
]


@pytest.fixture
def example(reg: Registry) -> dict:
    config = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert canonical(config) == README_CONFIG
    return config


def test_every_format_gives_the_expected_translation(example: dict) -> None:
    assert convert(example, "logitkit", "generation_config").value == {
        "temperature": 0.8, "top_k": 50, "top_p": 0.9, "min_p": 0.01, "do_sample": True,
    }  # fmt: skip
    assert convert(example, "logitkit", "llama.cpp").value == {
        "samplers": "temperature;top_k;top_p;min_p", "temperature": 0.8, "top_k": 50, "top_p": 0.9, "min_p": 0.01,
    }  # fmt: skip
    openai = convert(example, "logitkit", "openai")
    assert openai.value == {"temperature": 0.8, "top_p": 0.9}
    assert openai.lost == OPENAI_LOSSES


@pytest.mark.parametrize("middle", [f for f in FORMATS if f != "openai"])
def test_lossless_round_trips_return_the_same_config(example: dict, middle: str) -> None:
    there = convert(example, "logitkit", middle)
    back = convert(there.value, middle, "logitkit")
    assert there.lost == [] and back.lost == []
    assert back.value == (FROM_HF_CONFIG if middle == "generation_config" else README_CONFIG)


def test_round_trip_through_openai_reports_exactly_top_k_and_min_p(example: dict) -> None:
    there = convert(example, "logitkit", "openai")
    back = convert(there.value, "openai", "logitkit")
    assert there.lost == OPENAI_LOSSES and back.lost == []
    assert back.value == {"processors": [{"temperature": 0.8}, {"top_p": 0.9}]}


@pytest.mark.parametrize("source", FORMATS)
@pytest.mark.parametrize("target", FORMATS)
def test_every_direction_between_the_four_formats(example: dict, source: str, target: str) -> None:
    start = convert(example, "logitkit", source).value
    result = convert(start, source, target)
    through_openai = "openai" in (source, target)
    # Only a step into OpenAI from a richer format loses anything, and then exactly top_k and min_p.
    assert result.lost == (OPENAI_LOSSES if target == "openai" and source != "openai" else [])
    back = convert(result.value, target, "logitkit").value
    # The last reading of a generation_config.json decides the selector (multinomial, as transformers draws).
    read_from_hf = target == "generation_config" or (source, target) == ("generation_config", "logitkit")
    expected: dict = {"processors": [{"temperature": 0.8}, {"top_p": 0.9}]} if through_openai else README_CONFIG
    assert back == ({**expected, "selector": "multinomial"} if read_from_hf else expected)


def test_the_converted_pipelines_give_the_same_logits(example: dict) -> None:
    scores = torch.randn(3, 120, generator=torch.Generator().manual_seed(0))
    ids = torch.zeros(3, 2, dtype=torch.long)
    expected = Pipeline.from_config(example)(ids, scores)
    gc = convert(example, "logitkit", "generation_config").value
    assert torch.equal(Pipeline.from_generation_config(gc)(ids, scores), expected)
    llama = convert(example, "logitkit", "llama.cpp").value
    samplers = llama.pop("samplers")
    assert torch.equal(Pipeline.from_llama_cpp(samplers, **llama)(ids, scores), expected)


def test_llama_cpp_chains_by_name_and_by_letter(reg: Registry) -> None:
    assert parse_samplers("edskypmxt") == list(parse_samplers(None))
    assert parse_samplers("top-k;nucleus;temp") == ["top_k", "top_p", "temperature"]
    with pytest.raises(ConfigError, match=r"unknown llama\.cpp sampler 'warp'"):
        parse_samplers("top_k;warp")
    conv = from_llama_cpp("kt", temp=0.5)  # top_k takes llama.cpp's default 40
    assert conv.value["processors"] == [{"top_k": 40}, {"temperature": 0.5}]
    pipe = Pipeline.from_llama_cpp("kt", temp=0.5)
    assert [p.name for p in pipe.processors] == ["top_k", "temperature"]


def test_llama_cpp_engine_samplers_resolve_through_the_registry(reg: Registry) -> None:
    pipe = Pipeline.from_llama_cpp(
        "penalties;dry;top_n_sigma;xtc;temperature", temperature=0.7, dynatemp_range=0.3,
        frequency_penalty=0.2, dry_multiplier=0.8, top_n_sigma=1.5, xtc_probability=0.5,
    )  # fmt: skip
    assert [p.name for p in pipe.processors] == [
        "frequency_penalty",
        "dry",
        "top_n_sigma",
        "xtc",
        "dynamic_temperature",
    ]
    mirostat = Pipeline.from_llama_cpp(
        "kt", mirostat=2, mirostat_ent=3.0, mirostat_lr=0.2, temp=0.9
    )
    assert mirostat.selector is not None and mirostat.selector.name == "mirostat_v2"
    assert (mirostat.selector.config.tau, mirostat.selector.config.eta) == (3.0, 0.2)
    assert [p.name for p in mirostat.processors] == ["temperature"]
    with pytest.raises(ConfigError, match=r"samplers: llama\.cpp ignores the sampler chain"):
        Pipeline.from_llama_cpp("kt", mirostat=1, strict=True)


def test_openai_parameters(reg: Registry) -> None:
    pipe = Pipeline.from_openai(
        {
            "temperature": 0.5,
            "frequency_penalty": 0.5,
            "presence_penalty": 0.1,
            "logit_bias": {"3": -100},
            "seed": 7,
        }
    )
    assert [p.name for p in pipe.processors] == [
        "logit_bias",
        "frequency_penalty",
        "presence_penalty",
        "temperature",
    ]
    assert pipe.selector is not None and pipe.selector.config.seed == 7
    conv = convert({"temperature": 1.2, "logprobs": True, "best_of": 2}, "openai", "logitkit")
    assert [loss.parameter for loss in conv.lost] == ["logprobs", "best_of"]


def test_generation_config_reports_what_transformers_would_ignore(reg: Registry) -> None:
    conv = convert(
        {"do_sample": False, "temperature": 0.7, "num_beams": 4, "foo": 1},
        "generation_config",
        "logitkit",
    )
    assert {loss.parameter for loss in conv.lost} == {"temperature", "foo"}
    assert conv.value["generation"] == {"num_beams": 4}
    out = convert(
        {"processors": [{"top_p": 0.9}, {"temperature": 0.7}], "order": "listed"},
        "logitkit",
        "generation_config",
    )
    assert [loss.parameter for loss in out.lost] == ["order"]
    dry = convert({"processors": [{"dry": 0.8}]}, "logitkit", "generation_config")
    assert [loss.parameter for loss in dry.lost] == ["processors.dry"]


def test_convert_command(example: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(EXAMPLE), "--to", "openai"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"temperature": 0.8, "top_p": 0.9}
    assert err.splitlines() == [loss.line() for loss in OPENAI_LOSSES]
    assert main(["convert", str(EXAMPLE), "--to", "openai", "--strict"]) == 1
    capsys.readouterr()
    target = tmp_path / "generation_config.json"
    assert main(["convert", str(EXAMPLE), "--to", "hf", "-o", str(target)]) == 0
    assert main(["convert", str(target), "--to", "llama.cpp"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["samplers"] == "temperature;top_k;top_p;min_p" and err == ""
    assert main(["convert", "--samplers", "kt", "-p", "temp=0.5", "--to", "logitkit"]) == 0
    assert yaml.safe_load(capsys.readouterr().out) == {
        "processors": [{"top_k": 40}, {"temperature": 0.5}],
        "order": "listed",
    }
    assert main(["convert", "--samplers", "kz", "--to", "openai"]) == 2
    assert "unknown llama.cpp sampler" in capsys.readouterr().err
