"""CLI details: presets in ``list``, markup-free tables, ``plot -o FILE.png``, prompts from stdin, piped output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from logitkit.cli import build_parser, main


def test_generate_help_points_at_list_and_list_shows_the_presets(capsys: pytest.CaptureFixture[str]) -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert "see 'logitkit list'" in sub.choices["generate"].format_help()  # type: ignore[union-attr]
    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"combined", "code", "creative"} <= {p["name"] for p in listed["presets"]}
    assert {"hf", "llama.cpp", "vllm"} <= {p["name"] for p in listed["orders"]}
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "Config presets" in out and "combined" in out and "temperature 0.8, then top_k 50" in out


def test_explain_prints_parameter_values_as_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"processors": [{"name": "dry", "multiplier": 0.8, "sequence_breakers": ["def [a-z_]{1,12}", "[bold]x"]}]}))
    assert main(["explain", str(config), "--no-stages"]) == 0
    out = capsys.readouterr().out
    assert "def [a-z_]{1,12}" in out and "[bold]x" in out


def test_plot_out_file_png_writes_that_file(tmp_path: Path) -> None:
    target = tmp_path / "wg.png"
    assert main(["plot", "entropy", "-o", str(target)]) == 0
    assert target.is_file() and target.read_bytes()[:4] == b"\x89PNG"
    assert main(["plot", "temperature", "-o", str(tmp_path / "t.png")]) == 0
    assert (tmp_path / "t_raw.png").is_file() and (tmp_path / "t_sorted.png").is_file()


def _generate(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGITKIT_")}
    return subprocess.run(
        [sys.executable, "-m", "logitkit.cli", "generate", *args], input=stdin, capture_output=True,
        text=True, env=env, timeout=300,
    )  # fmt: skip


def test_generate_reads_the_prompt_from_stdin_and_piped_output_ends_with_a_newline() -> None:
    piped = _generate("-", "--preset", "code", "-n", "6", stdin="def add(a, b):\n")
    direct = _generate("def add(a, b):", "--preset", "code", "-n", "6")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == direct.stdout
    assert piped.stdout.startswith("def add(a, b):") and not piped.stdout.startswith("-")
    assert piped.stdout.endswith("\n")  # already so before this change (docs/shared FINDINGS)
