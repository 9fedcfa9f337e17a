"""Plugin loading: discovery, failures by name, strict mode, env controls, clashes and overrides."""

from __future__ import annotations

import logging
import re
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from logitkit.plugins import PluginLoadError, PluginSource, discover
from logitkit.registry import build_registry


def source(name: str, module: str) -> PluginSource:
    return PluginSource(name, "1.0", False, entry_point=EntryPoint(name, module, "logitkit"))


def with_builtins(*extra: PluginSource) -> list[PluginSource]:
    return [s for s in discover({}) if s.builtin] + list(extra)


def test_builtins_come_from_the_entry_point() -> None:
    sources = discover({})
    builtins = [s for s in sources if s.builtin]
    assert [s.name for s in builtins] == ["builtins"]
    assert builtins[0].entry_point is not None
    assert builtins[0].entry_point.value == "logitkit_builtins"


def test_core_does_not_import_the_builtins() -> None:
    import logitkit

    core = Path(logitkit.__file__).parent
    offenders = [
        str(path.relative_to(core))
        for path in core.rglob("*.py")
        if re.search(r"^\s*(from|import)\s+logitkit_builtins", path.read_text(encoding="utf-8"), re.M)
    ]
    assert offenders == []


def test_four_builtins_with_stages(reg) -> None:  # type: ignore[no-untyped-def]
    stages = {name: reg.processors[name].stage for name in ("temperature", "top_k", "top_p", "min_p")}
    assert stages == {"temperature": 300, "top_k": 400, "top_p": 400, "min_p": 400}
    assert {reg.processors[n].plugin for n in stages} == {"builtins"}


def test_good_plugin_is_loaded_from_an_entry_point() -> None:
    reg = build_registry(with_builtins(source("good", "lk_good_plugin")), env={})
    assert reg.processors["shift"].plugin == "good"
    assert reg.failures == []


def test_plugin_raising_on_import_is_reported_and_others_work(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="logitkit")
    reg = build_registry(
        with_builtins(source("broken", "lk_raises_on_import"), source("good", "lk_good_plugin")), env={}
    )
    assert [(f.plugin, f.phase) for f in reg.failures] == [("broken", "import")]
    assert "needs a library" in reg.failures[0].error
    assert "shift" in reg.processors and "top_p" in reg.processors
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "'broken'" in warnings[0]


def test_plugin_raising_in_hook_leaves_nothing_behind() -> None:
    reg = build_registry(with_builtins(source("hookfail", "lk_raises_in_hook")), env={})
    assert [(f.plugin, f.phase) for f in reg.failures] == [("hookfail", "register_processors")]
    assert "hookfail" not in [p.name for p in reg.plugins]


def test_non_processor_registration_is_a_named_failure() -> None:
    reg = build_registry(with_builtins(source("bad", "lk_bad_registration")), env={})
    assert reg.failures[0].plugin == "bad"
    assert "subclass of logitkit.Processor" in reg.failures[0].error
    assert "not_a_processor" not in reg.processors


def test_strict_mode_makes_failure_fatal() -> None:
    with pytest.raises(PluginLoadError, match="broken"):
        build_registry(with_builtins(source("broken", "lk_raises_on_import")), env={"LOGITKIT_STRICT_PLUGINS": "1"})


def test_duplicate_processor_names_both_plugins() -> None:
    reg = build_registry(with_builtins(source("clash", "lk_clashing_plugin")), env={})
    (failure,) = reg.failures
    assert "'clash'" in failure.error and "'builtins'" in failure.error and "'top_k'" in failure.error
    assert reg.processors["top_k"].plugin == "builtins"


def test_explicit_replace_is_allowed_and_recorded() -> None:
    reg = build_registry(with_builtins(source("loud", "lk_replacing_plugin")), env={})
    entry = reg.processors["temperature"]
    assert (entry.plugin, entry.replaced) == ("loud", "builtins")
    assert reg.failures == []


def test_block_list_never_imports_the_plugin() -> None:
    sys.modules.pop("lk_raises_on_import", None)
    reg = build_registry(
        with_builtins(source("broken", "lk_raises_on_import")), env={"LOGITKIT_DISABLE_PLUGINS": "broken"}
    )
    assert reg.failures == [] and reg.skipped == ["broken"]
    assert "lk_raises_on_import" not in sys.modules


def test_allow_list_loads_only_named_third_party_plugins() -> None:
    reg = build_registry(
        with_builtins(source("good", "lk_good_plugin"), source("broken", "lk_raises_on_import")),
        env={"LOGITKIT_PLUGINS": "good"},
    )
    assert "shift" in reg.processors and "top_p" in reg.processors
    assert reg.skipped == ["broken"] and reg.failures == []


def test_autoload_off_loads_builtins_only() -> None:
    reg = build_registry(with_builtins(source("good", "lk_good_plugin")), env={"LOGITKIT_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert "shift" not in reg.processors and "temperature" in reg.processors
    assert reg.skipped == ["good"]


def test_builtins_can_be_blocked_too() -> None:
    reg = build_registry(with_builtins(), env={"LOGITKIT_DISABLE_PLUGINS": "builtins"})
    assert reg.processors == {}


def test_inline_plugins_load_last() -> None:
    import lk_good_plugin

    reg = build_registry(with_builtins(), inline={"inline-good": lk_good_plugin}, env={})
    assert [p.name for p in reg.plugins][-1] == "inline-good"
    assert reg.processors["shift"].plugin == "inline-good"


def test_each_test_gets_a_fresh_plugin_manager() -> None:
    first = build_registry(with_builtins(), env={})
    second = build_registry(with_builtins(), env={})
    assert first.plugin_manager is not second.plugin_manager
