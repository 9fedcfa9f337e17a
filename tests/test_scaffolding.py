"""Plugin scaffolding and the author's kit: name clashes, strict mode, contract_tests(vocab=), required fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pydantic import Field

from conftest import TESTS, write_dist_info
from logitkit import Processor, ProcessorConfig, StepContext, hookimpl
from logitkit.cli import main
from logitkit.registry import build_registry
from logitkit.testing import check_processor_contract, contract_tests
from logitkit.testing.contract import ContractViolation

TEST_PLUGINS = TESTS / "plugins"


def run_cli(*args: str, pythonpath: list[Path], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LOGITKIT_")}
    full_env["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "logitkit.cli", *args], capture_output=True, text=True, env=full_env, timeout=120
    )


def test_new_plugin_refuses_a_name_that_is_taken(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new-plugin", "builtins", "-d", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "'builtins': an installed plugin (logitkit) already uses the entry-point name 'builtins'" in err
    assert not any(tmp_path.iterdir())


def test_a_second_distribution_with_the_builtins_entry_point_is_reported(tmp_path: Path) -> None:
    # What an installed 'new-plugin builtins' scaffold looked like: the very same entry point.
    write_dist_info(tmp_path, "logitkit-builtins", "0.1.0", {"builtins": "logitkit_builtins"})
    result = run_cli("plugins", "--json", pythonpath=[tmp_path])
    failed = json.loads(result.stdout)["failed"]
    assert [f["name"] for f in failed] == ["builtins"], failed
    assert "logitkit-builtins 0.1.0" in failed[0]["error"] and "another plugin already uses this name" in failed[0]["error"]


def test_strict_mode_names_every_failing_plugin_once(tmp_path: Path) -> None:
    write_dist_info(tmp_path, "lk-broken", "0.0.1", {"broken": "lk_raises_on_import"})
    write_dist_info(tmp_path, "lk-hooked", "0.0.1", {"hooked": "lk_raises_in_hook"})
    result = run_cli("list", pythonpath=[tmp_path, TEST_PLUGINS], env={"LOGITKIT_STRICT_PLUGINS": "1"})
    assert result.returncode == 1
    assert result.stderr.count("plugin 'broken' failed") == 1, result.stderr
    assert result.stderr.count("plugin 'hooked' failed") == 1, result.stderr
    assert "Traceback" not in result.stderr


class TableConfig(ProcessorConfig):
    strength: float = 1.0


class TokenTable(Processor):
    """Add a per-token bonus from a table the size of a (pretend) tokenizer's vocabulary."""

    name = "token_table"
    Config = TableConfig
    VOCAB = 64

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        table = torch.linspace(0, 1, self.VOCAB, dtype=scores.dtype, device=scores.device)
        index = torch.arange(scores.shape[-1], device=scores.device)
        return scores + self.config.strength * table[index]  # IndexError past 64 tokens... or below


class NeedsField(ProcessorConfig):
    level: float = Field(gt=0)


class Needy(Processor):
    name = "needy"
    Config = NeedsField

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores * self.config.level


class TablePlugin:
    @hookimpl
    def register_processors(self, register):  # type: ignore[no-untyped-def]
        register(TokenTable)


def test_a_vocab_bound_processor_gets_a_hint_then_passes_with_vocab() -> None:
    TokenTable.VOCAB = 64
    with pytest.raises(ContractViolation, match=r"IndexError at vocabulary size .*pass vocab=\(n, n\)"):
        check_processor_contract(TokenTable, {}, examples=5, vocab=(60, 70))
    check_processor_contract(TokenTable, {}, examples=5, vocab=(64, 64))


def test_contract_tests_passes_vocab_through(monkeypatch: pytest.MonkeyPatch) -> None:
    import logitkit.testing.suite as suite

    monkeypatch.setattr(suite, "build_registry", lambda: build_registry(inline={"table": TablePlugin()}, env={}))
    test = contract_tests("table", vocab=(64, 64), examples=5)
    test("processor", "token_table", TokenTable, {})
    failing = contract_tests("table", vocab=(65, 80), examples=5)
    with pytest.raises(ContractViolation, match="IndexError"):
        failing("processor", "token_table", TokenTable, {})


def test_a_config_without_defaults_asks_for_an_example_config() -> None:
    with pytest.raises(ContractViolation) as info:
        check_processor_contract(Needy, None, examples=2)
    assert "needy: its Config has required fields (level) and no example config was given" in str(info.value)
    with pytest.raises(ContractViolation, match="the example config"):
        check_processor_contract(Needy, {"level": -1}, examples=2)
    check_processor_contract(Needy, {"level": 2.0}, examples=2)
