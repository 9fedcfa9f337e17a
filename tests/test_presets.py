"""Config presets: the source document's temperature tables and combined example, overridable in place."""

from __future__ import annotations

import pytest

from logitkit import ConfigError, Pipeline
from logitkit.config import resolve

# The source document's tables: task -> temperature, and distribution shape -> temperature.
SEED_TEMPERATURES = {
    "code": 0.0, "math": 0.0, "extraction": 1.0, "chat": 1.3, "translation": 1.3, "creative": 1.5,
    "sharp": 0.1, "balanced": 0.5, "neutral": 1.0, "flat": 2.0,
}  # fmt: skip


def _fields(resolved) -> dict[str, dict]:
    return {spec.name: spec.config.model_dump() for spec in resolved.processors}


@pytest.mark.parametrize(("name", "temperature"), SEED_TEMPERATURES.items())
def test_temperature_presets(reg, name, temperature):
    assert name in reg.config_presets
    assert reg.config_presets[name].description
    resolved = resolve({"preset": name}, registry=reg)
    assert _fields(resolved) == {"temperature": {"temperature": temperature}}


def test_combined_preset_is_the_walkthrough(reg):
    resolved = resolve({"preset": "combined"}, registry=reg)
    assert [s.name for s in resolved.processors] == ["temperature", "top_k", "top_p", "min_p"]
    fields = _fields(resolved)
    assert fields["temperature"]["temperature"] == 0.8
    assert fields["top_k"]["top_k"] == 50
    assert fields["top_p"]["top_p"] == 0.9
    assert fields["min_p"]["min_p"] == 0.01
    # The preset and the shipped example file are the same pipeline.
    assert _fields(resolve("examples/seed-walkthrough.yaml", registry=reg)) == fields


def test_preset_fields_are_overridden_in_the_same_config(reg):
    resolved = resolve(
        {"preset": "combined", "processors": [{"top_p": 0.95}, {"name": "top_k", "top_k": 20}]},
        registry=reg,
    )
    fields = _fields(resolved)
    assert fields["top_p"]["top_p"] == 0.95
    assert fields["top_k"]["top_k"] == 20
    assert fields["temperature"]["temperature"] == 0.8  # untouched preset fields stay


def test_preset_override_from_a_yaml_file(reg, tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("preset: chat\nprocessors:\n  - temperature: 0.7\n  - top_k: 40\n")
    fields = _fields(resolve(path, registry=reg))
    assert fields == {
        "temperature": {"temperature": 0.7},
        "top_k": {"top_k": 40, "min_tokens_to_keep": 1},
    }


def test_overridden_value_is_still_validated(reg):
    with pytest.raises(ConfigError) as info:
        resolve(
            {"preset": "combined", "processors": [{"top_p": 1.5}]}, source="mine.yaml", registry=reg
        )
    # The path is the user's entry, not its slot in the merged list (processors[2]).
    assert [p.line() for p in info.value.problems] == [
        "mine.yaml: processors[0].top_p: must be > 0 and <= 1 (got 1.5)"
    ]


def test_unknown_preset_suggests_the_close_name(reg):
    with pytest.raises(ConfigError) as info:
        resolve({"preset": "cod"}, source="mine.yaml", registry=reg)
    assert "did you mean 'code'?" in info.value.problems[0].line()


def test_code_preset_picks_the_most_likely_token(reg):
    import torch

    pipe = Pipeline.from_config({"preset": "code"}, registry=reg)
    scores = torch.tensor([[0.1, 2.0, 1.9, -1.0]])
    for seed in range(5):
        seeded = pipe.replace(seeds=torch.tensor([seed]))
        assert int(seeded.next_tokens(torch.zeros((1, 1), dtype=torch.long), scores)[0]) == 1
