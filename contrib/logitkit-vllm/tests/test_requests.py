"""Request configs: dict, JSON text or preset name; named processors only; the operator's allow-list and default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from logitkit_vllm import RequestConfigs, ServerPolicy, requests

from logitkit import ConfigError


def problems(configs: RequestConfigs, raw: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        configs.plan({"logitkit": raw})
    return [p.line() for p in info.value.problems]


def test_dict_json_and_preset_give_the_same_pipeline() -> None:
    configs = RequestConfigs(ServerPolicy())
    as_dict = configs.plan({"logitkit": {"preset": "combined"}})
    as_json = configs.plan({"logitkit": json.dumps({"preset": "combined"})})
    by_name = configs.plan({"logitkit": "combined"})
    assert as_dict is not None and as_json is not None and by_name is not None
    names = [p.name for p in by_name.pipeline.processors]
    assert names == ["temperature", "top_k", "top_p", "min_p"]
    assert [p.name for p in as_dict.pipeline.processors] == names == [p.name for p in as_json.pipeline.processors]
    assert by_name.pipeline.selector is None  # vLLM chooses the token


def test_no_config_costs_no_plan() -> None:
    configs = RequestConfigs(ServerPolicy())
    assert configs.plan(None) is None
    assert configs.plan({"other": 1}) is None


def test_import_paths_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGITKIT_ALLOW_IMPORT", "1")  # even when the operator allows it for their own configs
    lines = problems(RequestConfigs(ServerPolicy()), {"processors": [{"name": "os:system"}]})
    assert lines == ["extra_args.logitkit: processors[0].name: import path 'os:system' refused; set LOGITKIT_ALLOW_IMPORT=1 or pass allow_import=True to allow it"]


def test_a_string_is_never_read_as_a_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("processors: [{temperature: 0.5}]\n")
    lines = problems(RequestConfigs(ServerPolicy()), str(path))
    assert len(lines) == 1 and "unknown preset" in lines[0]


def test_bad_values_give_logitkit_problem_lines() -> None:
    lines = problems(RequestConfigs(ServerPolicy()), '{"processors": [{"top_p": 1.5}, {"tmperature": 0.5}]}')
    assert lines[0].startswith("extra_args.logitkit: processors[0]")
    assert "unknown processor 'tmperature'" in lines[1] and "temperature" in lines[1]
    assert problems(RequestConfigs(ServerPolicy()), "{not json")[0].startswith("extra_args.logitkit: not valid JSON")


def test_selector_and_generation_sections() -> None:
    configs = RequestConfigs(ServerPolicy())
    greedy = configs.plan({"logitkit": {"processors": [{"temperature": 0.5}], "selector": "greedy"}})
    assert greedy is not None and greedy.greedy
    sample = configs.plan({"logitkit": {"processors": [{"temperature": 0.5}], "selector": "sample"}})
    assert sample is not None and not sample.greedy
    lines = problems(configs, {"processors": [], "selector": {"name": "sample", "seed": 3}, "generation": {"max_new_tokens": 5, "num_beams": 2}})
    assert lines == [
        "extra_args.logitkit: selector.seed: vLLM draws the token: use the request's seed",
        "extra_args.logitkit: generation.max_new_tokens: cannot run in vLLM: set the request's max_tokens instead",
        "extra_args.logitkit: generation.num_beams: cannot run in vLLM: vLLM's engine has no such setting; leave it out",
    ]
    assert "cannot run in vLLM" in problems(configs, {"selector": "multinomial"})[0]


def test_stateful_processors_that_cannot_follow_rows_are_refused() -> None:
    lines = problems(RequestConfigs(ServerPolicy()), {"processors": [{"guidance_scale": 1.5}]})
    assert any("cannot follow vLLM's rows" in line for line in lines)


def test_processors_needing_what_vllm_does_not_hand_over_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"processors": [{"name": "json_schema", "json_schema": {"type": "string"}}]}
    # The served model's tokenizer is handed over (logitkit_vllm.tokenizer): the constraints run.
    assert RequestConfigs(ServerPolicy()).plan({"logitkit": config}) is not None
    # Without it the constraint would fail inside the engine's step, on the first row that uses it.
    monkeypatch.setattr(requests, "PROVIDED_NEEDS", frozenset({"input_ids"}))
    lines = problems(RequestConfigs(ServerPolicy()), config)
    assert lines == ["extra_args.logitkit: processors[0]: 'json_schema' needs the tokenizer, which logitkit-vllm does not hand to processors"]


def test_allow_list_from_env_and_settings_file(tmp_path: Path) -> None:
    settings = tmp_path / "vllm.yaml"
    settings.write_text("allow: [temperature, top_k, chat]\ndefault: {processors: [{repetition_penalty: 1.2}]}\n")
    policy = ServerPolicy.from_env({"LOGITKIT_VLLM_SETTINGS": str(settings)})
    assert policy.allow == frozenset({"temperature", "top_k", "chat"})
    configs = RequestConfigs(policy)
    assert configs.plan({"logitkit": "chat"}) is not None
    assert problems(configs, {"processors": [{"temperature": 0.5}, {"top_p": 0.9}]}) == [
        "extra_args.logitkit: processors[1]: 'top_p' is not allowed on this server"
    ]
    assert problems(configs, "combined") == [  # a preset and the processors it brings are all checked
        "extra_args.logitkit: processors[2]: 'top_p' is not allowed on this server",
        "extra_args.logitkit: processors[3]: 'min_p' is not allowed on this server",
        "extra_args.logitkit: preset: 'combined' is not allowed on this server",
    ]
    default = configs.plan(None)  # the operator's default is not bound by the request allow-list
    assert default is not None and [p.name for p in default.pipeline.processors] == ["repetition_penalty"]
    narrowed = ServerPolicy.from_env({"LOGITKIT_VLLM_SETTINGS": str(settings), "LOGITKIT_VLLM_ALLOW": "top_k", "LOGITKIT_VLLM_DEFAULT": "chat"})
    assert narrowed.allow == frozenset({"top_k"}) and narrowed.default == "chat"


def test_a_bad_settings_file_is_named(tmp_path: Path) -> None:
    settings = tmp_path / "vllm.yaml"
    settings.write_text("allowed: [temperature]\n")
    with pytest.raises(ConfigError) as info:
        ServerPolicy.from_env({"LOGITKIT_VLLM_SETTINGS": str(settings)})
    assert str(settings) in str(info.value)
