"""The OpenAI and llama.cpp formats work on the default install, and a missing plugin is named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logitkit import ConfigError, Pipeline
from logitkit.cli import main
from logitkit.registry import Registry, build_registry, set_registry

REQUEST = {"temperature": 0.7, "frequency_penalty": 0.5, "presence_penalty": 0.2, "logit_bias": {"3": -100}}


def test_an_openai_request_converts_to_hf_with_the_builtins_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    set_registry(build_registry(env={"LOGITKIT_DISABLE_PLUGIN_AUTOLOAD": "1"}))
    request = tmp_path / "request.json"
    request.write_text(json.dumps(REQUEST), encoding="utf-8")
    assert main(["convert", str(request), "--from", "openai", "--to", "hf"]) == 0
    out, err = capsys.readouterr()
    # top_k 0: an unset top_k would be transformers' implicit 50 under do_sample, which OpenAI does not apply.
    assert json.loads(out) == {"temperature": 0.7, "do_sample": True, "top_k": 0}
    assert "not carried over: processors.frequency_penalty" in err


def test_llama_cpp_samplers_build_with_the_builtins_only() -> None:
    set_registry(build_registry(env={"LOGITKIT_DISABLE_PLUGIN_AUTOLOAD": "1"}))
    pipe = Pipeline.from_llama_cpp(
        "penalties;dry;top_n_sigma;xtc;temperature",
        temperature=0.7, dry_multiplier=0.8, frequency_penalty=0.3, top_n_sigma=1.0,
        xtc_probability=0.5, mirostat=2,
    )  # fmt: skip
    assert pipe.selector is not None and type(pipe.selector).name == "mirostat_v2"


def test_an_unknown_processor_names_the_plugins_that_did_not_load(reg: Registry) -> None:
    set_registry(build_registry(env={"LOGITKIT_DISABLE_PLUGINS": "builtins"}))
    with pytest.raises(ConfigError) as info:
        Pipeline.from_openai({"frequency_penalty": 0.5})
    assert "unknown processor 'frequency_penalty'; plugins not loaded: 'builtins' (disabled)" in str(
        info.value
    )
