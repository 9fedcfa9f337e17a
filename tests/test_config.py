"""Config loading and validation: formats, shorthand, errors with file/path/reason, ordering, presets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logitkit import ConfigError, Pipeline
from logitkit.config import resolve

FOUR = [{"temperature": 0.7}, {"top_k": 50}, {"top_p": 0.9}, {"min_p": 0.05}]


def names(resolved) -> list[str]:  # type: ignore[no-untyped-def]
    return [s.name for s in resolved.processors]


def problems(obj, **kw) -> list[str]:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        resolve(obj, **kw)
    return [p.line() for p in info.value.problems]


def test_shorthand_and_full_form_are_equivalent(reg) -> None:  # type: ignore[no-untyped-def]
    short = resolve([{"top_p": 0.9}])
    full = resolve({"processors": [{"name": "top_p", "top_p": 0.9}]})
    nested = resolve([{"top_p": {"top_p": 0.9}}])
    assert short.processors[0].config == full.processors[0].config == nested.processors[0].config


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", "processors:\n  - temperature: 0.7\n  - top_p: 0.9\n"),
        (".yml", "- temperature: 0.7\n- top_p: 0.9\n"),
        (".json", json.dumps({"processors": [{"temperature": 0.7}, {"name": "top_p", "top_p": 0.9}]})),
        (".toml", '[[processors]]\nname = "temperature"\ntemperature = 0.7\n[[processors]]\nname = "top_p"\ntop_p = 0.9\n'),
    ],
)
def test_every_file_format_loads(reg, tmp_path: Path, suffix: str, text: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / f"c{suffix}"
    path.write_text(text, encoding="utf-8")
    assert names(resolve(path)) == ["temperature", "top_p"]


def test_default_order_is_by_stage_and_priority(reg) -> None:  # type: ignore[no-untyped-def]
    resolved = resolve([{"min_p": 0.05}, {"top_p": 0.9}, {"top_k": 50}, {"temperature": 0.7}])
    assert names(resolved) == ["temperature", "top_k", "top_p", "min_p"]


def test_listed_order_keeps_the_file_order(reg) -> None:  # type: ignore[no-untyped-def]
    resolved = resolve({"order": "listed", "processors": [{"min_p": 0.05}, {"temperature": 0.7}]})
    assert names(resolved) == ["min_p", "temperature"]


def test_llama_cpp_preset_puts_temperature_last(reg) -> None:  # type: ignore[no-untyped-def]
    resolved = resolve({"order": "llama.cpp", "processors": FOUR})
    assert names(resolved) == ["top_k", "top_p", "min_p", "temperature"]


def test_vllm_preset_runs_min_p_before_top_k(reg) -> None:  # type: ignore[no-untyped-def]
    resolved = resolve({"order": "vllm", "processors": FOUR})
    assert names(resolved) == ["temperature", "min_p", "top_k", "top_p"]


def test_unknown_processor_gets_a_suggestion(reg) -> None:  # type: ignore[no-untyped-def]
    assert problems([{"top_pp": 0.9}]) == ["<config>: processors[0].name: unknown processor 'top_pp'; did you mean 'top_p'?"]


def test_out_of_range_names_the_allowed_range(reg) -> None:  # type: ignore[no-untyped-def]
    assert problems([{"top_p": 1.5}]) == ["<config>: processors[0].top_p: must be > 0 and <= 1 (got 1.5)"]
    assert problems([{"min_p": -0.1}]) == ["<config>: processors[0].min_p: must be >= 0 and <= 1 (got -0.1)"]
    assert problems([{"top_k": 0}]) == ["<config>: processors[0].top_k: must be >= 1 (got 0)"]


def test_unknown_field_gets_a_suggestion(reg) -> None:  # type: ignore[no-untyped-def]
    (line,) = problems([{"name": "top_p", "top_p": 0.9, "min_tokens_to_kep": 2}])
    assert line == "<config>: processors[0].min_tokens_to_kep: unknown field; did you mean 'min_tokens_to_keep'?"


def test_all_problems_are_reported_at_once_with_the_file(reg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "bad.yaml"
    path.write_text("processors:\n  - top_pp: 0.9\n  - top_p: 1.5\n  - name: top_k\n    top_k: fifty\n", encoding="utf-8")
    lines = problems(path)
    assert len(lines) == 3
    assert all(line.startswith(f"{path}: processors[") for line in lines)
    assert "processors[2].top_k" in lines[2] and "integer" in lines[2]


def test_nan_and_inf_are_rejected(reg) -> None:  # type: ignore[no-untyped-def]
    (line,) = problems([{"temperature": float("nan")}])
    assert "processors[0].temperature" in line


def test_duplicate_processor_is_an_error(reg) -> None:  # type: ignore[no-untyped-def]
    (line,) = problems([{"top_p": 0.9}, {"top_p": 0.8}])
    assert "processors[1]: duplicate processor 'top_p' (also at processors[0])" in line


def test_unknown_order_and_section(reg) -> None:  # type: ignore[no-untyped-def]
    lines = problems({"order": "sorted", "procesors": []})
    assert any("order: unknown order 'sorted'" in line for line in lines)
    assert any("procesors: unknown section; did you mean 'processors'?" in line for line in lines)


def test_import_paths_are_refused_unless_allowed(reg) -> None:  # type: ignore[no-untyped-def]
    (line,) = problems([{"name": "lk_good_plugin:Shift"}])
    assert "import path 'lk_good_plugin:Shift' refused" in line
    resolved = resolve([{"name": "lk_good_plugin:Shift", "shift": 1.0}], allow_import=True)
    assert names(resolved) == ["shift"]


def test_yaml_python_tags_are_refused(reg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "evil.yaml"
    path.write_text("processors: !!python/object/apply:os.system ['echo hi']\n", encoding="utf-8")
    (line,) = problems(path)
    assert "YAML tag not allowed" in line


def test_alias_bomb_is_refused(reg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 10)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (line,) = problems(path)
    assert "expands to more than" in line


def test_size_limit(reg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOGITKIT_MAX_CONFIG_BYTES", "100")
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * 200 + "\n- top_p: 0.9\n", encoding="utf-8")
    (line,) = problems(path)
    assert "the limit is 100" in line


def test_empty_and_binary_files(reg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x89PNG\x00\x01\xff\xfe")
    assert "file is empty" in problems(empty)[0]
    assert "UTF-8" in problems(binary)[0] or "binary" in problems(binary)[0]


def test_third_party_processor_validates_like_builtins(make_registry) -> None:  # type: ignore[no-untyped-def]
    import lk_good_plugin

    make_registry(inline={"good": lk_good_plugin})
    assert names(resolve([{"shift": 2.0}, {"temperature": 0.5}])) == ["shift", "temperature"]
    (line,) = problems([{"shift": "a lot"}])
    assert line.startswith("<config>: processors[0].shift:")


def test_tokens_section_accepts_one_eos_or_many(reg) -> None:  # type: ignore[no-untyped-def]
    assert resolve({"tokens": {"eos": 2}, "processors": []}).tokens.eos == [2]
    assert resolve({"tokens": {"eos": [2, 3]}, "processors": []}).tokens.eos == [2, 3]
    assert "tokens.bos" in problems({"tokens": {"bos": -1}})[0]


def test_pipeline_from_config_picks_a_sensible_selector(reg) -> None:  # type: ignore[no-untyped-def]
    assert Pipeline.from_config(FOUR).selector.name == "sample"  # type: ignore[union-attr]
    assert Pipeline.from_config([]).selector.name == "greedy"  # type: ignore[union-attr]
    assert Pipeline.from_config({"processors": FOUR, "selector": "greedy"}).selector.name == "greedy"  # type: ignore[union-attr]
