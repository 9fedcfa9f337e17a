"""Issue 15, items 3, 4, 5 and 17: plugin faults are named and isolated."""

from __future__ import annotations

import logging
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import torch

import logitkit
from conftest import write_dist_info
from logitkit import Pipeline, ProcessorContractError
from logitkit.plugins import PluginSource, discover
from logitkit.registry import build_registry

TEST_PLUGINS = Path(__file__).parent / "plugins"


def source(name: str, module: str) -> PluginSource:
    return PluginSource(name, "1.0", False, entry_point=EntryPoint(name, module, "logitkit"))


def with_plugins(*pairs: tuple[str, str]):  # type: ignore[no-untyped-def]
    builtins = [s for s in discover({}) if s.builtin]
    return build_registry([*builtins, *(source(n, m) for n, m in pairs)], env={})


def scripted_model(vocab: int = 8):  # type: ignore[no-untyped-def]
    def model(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], vocab)
        logits[..., 3] = 1.0
        return logits

    return model


# -- item 4: sys.exit at import ------------------------------------------------------------------


def test_a_plugin_calling_sys_exit_at_import_is_reported_and_the_rest_load() -> None:
    reg = with_plugins(("exits", "lk_exits_on_import"), ("good", "lk_good_plugin"))
    (failure,) = reg.failures
    assert failure.plugin == "exits" and failure.phase == "import" and "SystemExit" in failure.error
    assert "shift" in reg.processors and "top_k" in reg.processors


def test_the_cli_survives_a_plugin_calling_sys_exit(tmp_path: Path) -> None:

    write_dist_info(tmp_path, "lk-exits", "1.0", {"exits": "lk_exits_on_import"})
    env = {"PYTHONPATH": f"{tmp_path}:{TEST_PLUGINS}", "PATH": "/usr/bin:/bin"}
    config = tmp_path / "ok.yaml"
    config.write_text("[top_k: 3]\n", encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "logitkit.cli", "validate", str(config)],
                            capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert "plugin 'exits' failed to load (import): SystemExit: 3" in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr


# -- item 17: plugin config classes and primary -------------------------------------------------


@pytest.mark.parametrize(
    ("module", "phrase"),
    [
        ("lk_plain_basemodel_config", "Lax.Config must subclass logitkit.ProcessorConfig"),
        ("lk_bad_primary", "Boost.primary is 'strenght', which is not a field of BoostConfig"),
        ("lk_bad_stop_reason", "Bored.reason is 'bored'; a finish reason is one of eos, stop_string, length, time"),
    ],
)
def test_registration_refuses_and_names_the_plugin(module: str, phrase: str) -> None:
    reg = with_plugins(("suspect", module))
    (failure,) = reg.failures
    assert failure.plugin == "suspect" and phrase in failure.error, failure.error
    assert "plugin 'suspect'" in failure.line()


# -- item 3: stopping criteria that raise -----------------------------------------------------


def test_a_raising_stopping_criterion_does_not_break_generate(caplog: pytest.LogCaptureFixture) -> None:
    reg = with_plugins(("raising-stop", "lk_raising_stop"))
    assert reg.failures == []
    pipe = Pipeline.from_config([], registry=reg)
    with caplog.at_level(logging.WARNING):
        out = logitkit.generate(scripted_model(), torch.tensor([[1, 2]]), pipe, registry=reg, max_new_tokens=4, eos_token_id=[])
    assert out.new_tokens.tolist() == [[3, 3, 3, 3]] and out.finish_reasons == ["length"]
    text = caplog.text
    assert "stopping criterion 'explodes_at_build' (plugin 'raising-stop') failed to build" in text
    assert "stopping criterion 'explodes_at_check' (from lk_raising_stop) failed" in text
    assert "ZeroDivisionError: cannot check" in text


def test_eos_still_stops_next_to_a_raising_criterion() -> None:
    reg = with_plugins(("raising-stop", "lk_raising_stop"))
    out = logitkit.generate(scripted_model(), torch.tensor([[1, 2]]), [], registry=reg, max_new_tokens=5, eos_token_id=3)
    assert out.new_tokens.tolist() == [[3]] and out.finish_reasons == ["eos"]


# -- item 5: raw errors that named no plugin ---------------------------------------------------


@pytest.fixture(scope="module")
def bad_reg():  # type: ignore[no-untyped-def]
    reg = with_plugins(("bad-runtime", "lk_bad_runtime"))
    assert reg.failures == []
    return reg


IDS = torch.tensor([[1, 2, 3]])


def test_a_processor_whose_init_raises_is_named(bad_reg) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ProcessorContractError, match=r"processor 'raises_in_init' \(plugin 'bad-runtime'\) raised .*KeyError"):
        Pipeline.from_config(["raises_in_init"], registry=bad_reg)


@pytest.mark.parametrize("check", [False, True])
def test_a_processor_whose_accept_raises_is_named(bad_reg, check: bool) -> None:  # type: ignore[no-untyped-def]
    pipe = Pipeline.from_config(["raises_in_accept"], registry=bad_reg, check=check)
    state = pipe.start(IDS)
    with pytest.raises(ProcessorContractError, match="processor 'raises_in_accept' raised in accept: IndexError"):
        state.next_tokens(IDS, torch.randn(1, 10))


@pytest.mark.parametrize("fast", [True, False])
def test_a_selector_returning_minus_one_is_refused(bad_reg, fast: bool) -> None:  # type: ignore[no-untyped-def]
    pipe = Pipeline.from_config({"processors": [{"top_k": 3}], "selector": "minus_one"}, registry=bad_reg)
    pipe = pipe.replace(fast_path=fast)
    with pytest.raises(ProcessorContractError, match=r"selector 'minus_one' chose ids outside the vocabulary: \[-1\]"):
        pipe.next_tokens(IDS, torch.randn(1, 10))
    with pytest.raises(ProcessorContractError, match="minus_one"):
        logitkit.generate(scripted_model(), IDS, pipe, registry=bad_reg, max_new_tokens=3)


def test_a_processor_that_wipes_its_input_is_named_not_the_model(bad_reg) -> None:  # type: ignore[no-untyped-def]
    pipe = Pipeline.from_config(["wipes_input"], registry=bad_reg)
    with pytest.raises(ProcessorContractError, match="processor 'wipes_input' modified its input scores in place"):
        pipe.next_tokens(IDS, torch.randn(1, 10))


@pytest.mark.parametrize("fast", [True, False])
def test_a_wrong_shape_is_refused_with_check_mode_off(bad_reg, fast: bool) -> None:  # type: ignore[no-untyped-def]
    pipe = Pipeline.from_config({"order": "listed", "processors": ["wrong_shape_quietly", {"top_k": 3}]}, registry=bad_reg, check=False)
    pipe = pipe.replace(fast_path=fast)
    with pytest.raises(ProcessorContractError, match=r"processor 'wrong_shape_quietly' returned shape \(1, 9\), expected \(1, 10\)"):
        pipe.next_tokens(IDS, torch.randn(1, 10))


def test_a_search_strategys_return_value_is_checked(bad_reg) -> None:  # type: ignore[no-untyped-def]
    pipe = Pipeline.from_config({"generation": {"search": "junk"}}, registry=bad_reg)
    with pytest.raises(ProcessorContractError, match=r"search strategy 'junk' \(plugin 'bad-runtime'\) returned dict, not a GenerationOutput"):
        logitkit.generate(scripted_model(), IDS, pipe, registry=bad_reg, max_new_tokens=2)
