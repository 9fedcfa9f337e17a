"""The core CLI commands, in-process and as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import write_dist_info
from logitkit.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
TEST_PLUGINS = Path(__file__).parent / "plugins"


def run_cli(*args: str, pythonpath: list[Path] | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LOGITKIT_")}
    full_env["PYTHONPATH"] = os.pathsep.join(str(p) for p in (pythonpath or []))
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "logitkit.cli", *args], capture_output=True, text=True, env=full_env, timeout=120
    )


def test_every_command_has_a_one_line_help() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, choice in sub.choices.items():  # type: ignore[union-attr]
        assert choice.description and "\n" not in choice.description, name


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.startswith("logitkit ")


def test_list_shows_builtins_with_stages(reg, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["processors"]}
    for name, stage in [("temperature", "temperature"), ("top_k", "truncation"), ("top_p", "truncation"), ("min_p", "truncation")]:
        assert rows[name]["stage"] == stage and rows[name]["plugin"] == "builtins"


def test_validate_bad_file_exits_2_with_one_line_per_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("processors:\n  - top_pp: 0.9\n  - top_p: 1.5\n  - name: top_k\n    top_k: fifty\n", encoding="utf-8")
    result = run_cli("validate", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"{bad}: processors[0].name: unknown processor 'top_pp'; did you mean 'top_p'?",
        f"{bad}: processors[1].top_p: must be > 0 and <= 1 (got 1.5)",
        f"{bad}: processors[2].top_k: must be an integer, not a string (got 'fifty')",
    ]
    assert "Traceback" not in result.stderr + result.stdout


def test_validate_good_file_exits_0(reg, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["validate", str(REPO / "examples" / "seed-walkthrough.yaml")]) == 0
    assert "ok" in capsys.readouterr().out


def test_explain_shows_the_ordered_pipeline(reg, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "c.yaml"
    cfg.write_text("processors:\n  - min_p: 0.05\n  - temperature: 0.7\n", encoding="utf-8")
    assert main(["explain", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.index("temperature") < out.index("min_p")


def test_schema_is_json_schema_with_every_processor(reg, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["$schema"].startswith("https://json-schema.org/")
    text = json.dumps(schema)
    for name in reg.processors:
        assert f'"{name}"' in text


def test_failing_plugin_is_reported_and_list_still_works(tmp_path: Path) -> None:
    write_dist_info(tmp_path, "lk-broken", "0.0.1", {"broken": "lk_raises_on_import"})
    result = run_cli("list", pythonpath=[tmp_path, TEST_PLUGINS])
    assert result.returncode == 0
    assert "top_p" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if "broken" in line]
    assert len(warnings) == 1 and "failed to load" in warnings[0]
    plugins = run_cli("plugins", "--json", pythonpath=[tmp_path, TEST_PLUGINS])
    failed = json.loads(plugins.stdout)["failed"]
    assert [f["name"] for f in failed] == ["broken"]


def test_strict_mode_makes_the_command_fail(tmp_path: Path) -> None:
    write_dist_info(tmp_path, "lk-broken", "0.0.1", {"broken": "lk_raises_on_import"})
    result = run_cli("list", pythonpath=[tmp_path, TEST_PLUGINS], env={"LOGITKIT_STRICT_PLUGINS": "1"})
    assert result.returncode == 1
    assert "broken" in result.stderr and "Traceback" not in result.stderr


def test_override_shows_in_list(tmp_path: Path) -> None:
    write_dist_info(tmp_path, "lk-loud", "0.0.1", {"loud": "lk_replacing_plugin"})
    result = run_cli("list", "--json", pythonpath=[tmp_path, TEST_PLUGINS])
    row = next(r for r in json.loads(result.stdout)["processors"] if r["name"] == "temperature")
    assert (row["plugin"], row["replaced"]) == ("loud", "builtins")
