"""Config knobs: an entry's stage and priority, removing a preset's processor, on_empty_row,
the selector shorthand, and forced_eos_token_id taking the generation length."""

from __future__ import annotations

import pytest
import torch

from logitkit import ConfigError, Pipeline
from logitkit.config import resolve
from logitkit.formats import canonical
from logitkit.registry import Registry
from logitkit.schema import build_json_schema


def names(obj: object) -> list[str]:
    return [spec.name for spec in resolve(obj).processors]


def test_an_entry_runs_at_the_stage_and_priority_it_names(reg: Registry) -> None:
    config = {"processors": [
        {"top_k": 5}, {"name": "temperature", "temperature": 0.7, "stage": 450},
        {"name": "top_p", "top_p": 0.9, "priority": -1}, {"name": "min_p", "min_p": 0.1, "stage": "guidance"},
    ]}  # fmt: skip
    assert names(config) == ["min_p", "top_p", "top_k", "temperature"]
    pipe = Pipeline.from_config(config)
    assert [(type(p).name, int(p.stage)) for p in pipe.processors][-1] == ("temperature", 450)
    # The canonical form keeps the placement, so it runs the same.
    assert names(canonical(config)) == names(config)
    assert {"name": "temperature", "temperature": 0.7, "stage": 450} in canonical(config)["processors"]


def test_a_bad_stage_or_priority_names_the_entry(reg: Registry) -> None:
    with pytest.raises(ConfigError) as info:
        resolve({"processors": [{"name": "top_k", "top_k": 3, "stage": "middle"}, {"name": "top_p", "top_p": 0.5, "priority": "high"}]})
    text = str(info.value)
    assert "processors[0].stage: unknown stage 'middle'" in text
    assert "processors[1].priority: must be an integer (got 'high')" in text


def test_the_json_schema_lets_an_entry_set_its_stage(reg: Registry) -> None:
    props = build_json_schema(reg)["$defs"]["TemperatureEntry"]["properties"]
    assert {"stage", "priority"} <= set(props)


def test_false_removes_a_preset_processor_and_errors_point_at_the_users_entry(reg: Registry) -> None:
    assert names({"preset": "combined", "processors": [{"top_k": False}]}) == ["temperature", "top_p", "min_p"]
    with pytest.raises(ConfigError) as info:
        resolve({"preset": "combined", "processors": [{"top_k": False}, {"top_p": 7}]})
    assert "<config>: processors[1].top_p: must be > 0 and <= 1 (got 7)" in str(info.value)


def test_on_empty_row_is_set_from_the_config(reg: Registry) -> None:
    config = {"on_empty_row": "error", "processors": [{"suppress_tokens": [0, 1, 2]}]}
    pipe = Pipeline.from_config(config)
    assert pipe.on_empty_row == "error"
    with pytest.raises(Exception, match="suppress_tokens"):
        pipe.next_tokens(torch.tensor([[0]]), torch.zeros(1, 3))
    assert Pipeline.from_config(config, on_empty_row="top").on_empty_row == "top"  # the argument wins
    assert canonical(config)["on_empty_row"] == "error"
    with pytest.raises(ConfigError, match="on_empty_row: must be one of top, error"):
        resolve({"on_empty_row": "drop"})


def test_the_selector_takes_a_one_key_shorthand(reg: Registry) -> None:
    assert resolve({"selector": {"sample": 42}}).selector.config.seed == 42  # type: ignore[union-attr]
    miro = resolve({"selector": {"mirostat_v2": {"tau": 3.0}}}).selector
    assert miro is not None and miro.name == "mirostat_v2" and miro.config.tau == 3.0  # type: ignore[attr-defined]
    with pytest.raises(ConfigError, match=r"selector\.greedy: selector 'greedy' has no primary field"):
        resolve({"selector": {"greedy": 3}})


def test_forced_eos_takes_the_generation_length(reg: Registry) -> None:
    resolved = resolve({"tokens": {"eos": 2}, "generation": {"max_new_tokens": 4}, "processors": ["forced_eos_token_id"]})
    assert resolved.processors[0].config.max_new_tokens == 4  # type: ignore[attr-defined]
    pipe = Pipeline.from_resolved(resolved, prompt_length=2)
    last = pipe(torch.tensor([[5, 6, 7, 8, 9]]), torch.zeros(1, 10))  # 3 generated: the 4th is the last
    assert torch.isfinite(last).nonzero()[:, 1].tolist() == [2]
    earlier = pipe(torch.tensor([[5, 6, 7, 8]]), torch.zeros(1, 10))
    assert bool(torch.isfinite(earlier).all())
