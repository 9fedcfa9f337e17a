"""``validate`` recognises the other formats and says where a misplaced key belongs; ``convert`` reads keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from logitkit.cli import main
from logitkit.formats.sniff import guess_format


@pytest.mark.parametrize(
    ("data", "fmt", "from_flag"),
    [
        ({"do_sample": True, "temperature": 0.7, "max_new_tokens": 20, "transformers_version": "5.0"}, "generation_config", "hf"),
        ({"model": "gpt-4o", "messages": [], "temperature": 0.5, "frequency_penalty": 0.2}, "openai", "openai"),
        ({"samplers": "top_k;temperature", "top_k": 40, "repeat_penalty": 1.1}, "llama.cpp", "llama.cpp"),
    ],
)
def test_validate_names_the_format_and_the_convert_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: dict, fmt: str, from_flag: str
) -> None:
    assert guess_format(data) == fmt
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "not a logitkit config" in err[0]
    assert f"logitkit convert {path} --from {from_flag} --to logitkit" in err[0]


def test_a_misplaced_key_is_told_its_section(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("max_new_tokens: 20\neos: 2\ngreedy: true\ntop_k: 5\nproccesors: []\n", encoding="utf-8")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: max_new_tokens: unknown section; 'max_new_tokens' belongs in the 'generation:' section" in err
    assert "eos: unknown section; 'eos' belongs in the 'tokens:' section" in err
    assert "greedy: unknown section; a selector is set with 'selector: greedy'" in err
    assert "top_k: unknown section; processors go in the 'processors:' list" in err
    assert "proccesors: unknown section; did you mean 'processors'?" in err


def test_convert_tells_the_format_from_the_keys_and_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "llama3-generation.json"
    path.write_text(json.dumps({"do_sample": True, "temperature": 0.6, "top_p": 0.9, "eos_token_id": 2}))
    assert main(["convert", str(path), "--to", "openai"]) == 0
    assert json.loads(capsys.readouterr().out) == {"temperature": 0.6, "top_p": 0.9}
    bad = tmp_path / "request.json"
    bad.write_text(json.dumps({"model": "x", "temperature": 0.5, "frequency_penalty": 9}))
    assert main(["convert", str(bad), "--to", "hf"]) == 2
    assert f"{bad}: processors[1].frequency_penalty: must be >= -2 and <= 2 (got 9)" in capsys.readouterr().err
    unclear = tmp_path / "x.json"
    unclear.write_text(json.dumps({"temperature": 0.5}))
    assert main(["convert", str(unclear), "--to", "hf"]) == 2
    assert "cannot tell the format from the file name or its keys; give --from" in capsys.readouterr().err
