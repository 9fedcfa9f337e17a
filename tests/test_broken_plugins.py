"""Broken plugins: each is a real module in tests/plugins, reported by name while the rest keep working.

Run-time contract breaks (wrong shape, dtype, NaN, mutation) cannot be seen at
load time; check mode (``check=True`` or ``LOGITKIT_CHECK=1``) names the
processor that broke the contract, and the default path does not pay for it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import EntryPoint
from pathlib import Path

import lk_bad_outputs
import pytest
import torch

from conftest import write_dist_info
from logitkit import ConfigError, Pipeline, ProcessorContractError
from logitkit.plugins import PluginSource, discover
from logitkit.registry import build_registry

TEST_PLUGINS = Path(__file__).parent / "plugins"

#: plugin name -> (module, the failure phase, a phrase the error must contain)
BROKEN = {
    "on-import": ("lk_raises_on_import", "import", "needs a library"),
    "in-hook": ("lk_raises_in_hook", "register_processors", "boom while registering"),
    "non-processor": (
        "lk_bad_registration",
        "register_processors",
        "subclass of logitkit.Processor",
    ),
    "bad-stage": ("lk_bad_stage", "register_processors", "stage 5000 is outside 1..999"),
    "bad-stage-name": ("lk_bad_stage_name", "register_processors", "unknown stage 'sideways'"),
    "not-pydantic": (
        "lk_config_not_pydantic",
        "register_processors",
        "Config must be a pydantic model",
    ),
    "clash": (
        "lk_clashing_plugin",
        "register_processors",
        "clashes with the one from plugin 'builtins'",
    ),
}


def source(name: str, module: str) -> PluginSource:
    return PluginSource(name, "1.0", False, entry_point=EntryPoint(name, module, "logitkit"))


def builtins() -> list[PluginSource]:
    return [s for s in discover({}) if s.builtin]


def test_every_broken_plugin_is_reported_by_name_and_the_rest_load() -> None:
    sources = [source(name, module) for name, (module, _, _) in BROKEN.items()]
    reg = build_registry([*builtins(), *sources, source("good", "lk_good_plugin")], env={})
    failures = {f.plugin: f for f in reg.failures}
    assert set(failures) == set(BROKEN)
    for name, (_, phase, phrase) in BROKEN.items():
        assert failures[name].phase == phase, name
        assert phrase in failures[name].error, (name, failures[name].error)
        assert f"plugin {name!r}" in failures[name].line()
    # Nothing a failed plugin registered is left behind; the good plugin and the built-ins work.
    assert {"nowhere", "sideways", "plain_config", "not_a_processor"}.isdisjoint(reg.processors)
    assert reg.processors["top_k"].plugin == "builtins"
    assert [p.name for p in reg.plugins] == ["builtins", "good"]
    pipe = Pipeline.from_config({"processors": [{"shift": 1.0}, {"top_k": 2}]}, registry=reg)
    out = pipe(torch.tensor([[1, 2]]), torch.tensor([[0.0, 3.0, 1.0, 2.0]]))
    assert torch.isinf(out).tolist() == [[True, False, True, False]]


def test_two_distributions_with_the_same_plugin_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both are discovered; the first loads, the second is a named failure saying where each came from."""
    write_dist_info(tmp_path, "lk-twin-a", "1.0", {"twin": "lk_same_name_a"})
    write_dist_info(tmp_path, "lk-twin-b", "2.0", {"twin": "lk_same_name_b"})
    monkeypatch.syspath_prepend(str(tmp_path))
    twins = [s for s in discover({}) if s.name == "twin"]
    assert sorted(s.entry_point.value for s in twins if s.entry_point) == [
        "lk_same_name_a",
        "lk_same_name_b",
    ]
    reg = build_registry(env={})
    (failure,) = [f for f in reg.failures if f.plugin == "twin"]
    versions = {"lk_same_name_a": "lk-twin-a 1.0", "lk_same_name_b": "lk-twin-b 2.0"}
    loaded, refused = (f"{v} from {versions[v]}" for v in (t.entry_point.value for t in twins))  # type: ignore[union-attr]
    assert (
        f"another plugin already uses this name ({loaded}); {refused} was not loaded"
        in failure.error
    )
    # Exactly one twin registered its processor; the built-ins are untouched.
    assert sum(name in reg.processors for name in ("twin_a", "twin_b")) == 1
    assert "temperature" in reg.processors


def test_the_same_entry_point_seen_twice_is_loaded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An editable install next to a regular one shows the same entry point twice; that is no clash."""
    write_dist_info(tmp_path / "a", "lk-good", "1.0", {"good": "lk_good_plugin"})
    write_dist_info(tmp_path / "b", "lk-good", "1.0", {"good": "lk_good_plugin"})
    monkeypatch.syspath_prepend(str(tmp_path / "a"))
    monkeypatch.syspath_prepend(str(tmp_path / "b"))
    assert [s.name for s in discover({})].count("good") == 1
    reg = build_registry(env={})
    assert reg.failures == [] and reg.processors["shift"].plugin == "good"


def test_an_order_preset_that_raises_is_a_config_problem() -> None:
    reg = build_registry([*builtins(), source("bad-order", "lk_bad_order")], env={})
    with pytest.raises(ConfigError) as info:
        Pipeline.from_config({"order": "explodes", "processors": [{"top_k": 3}]}, registry=reg)
    (problem,) = info.value.problems
    assert (problem.path, problem.reason) == (
        "order",
        "order 'explodes' failed: KeyError: 'no rank for this processor'",
    )


def test_plugins_command_lists_each_failure_by_name(tmp_path: Path) -> None:
    for name, (module, _, _) in BROKEN.items():
        write_dist_info(tmp_path, f"lk-{name}", "0.1", {name: module})
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGITKIT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), str(TEST_PLUGINS)])
    result = subprocess.run(
        [sys.executable, "-m", "logitkit.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert {f["name"] for f in report["failed"]} == set(BROKEN)
    assert "builtins" in {p["name"] for p in report["loaded"]}


# -- run-time contract breaks and check mode ----------------------------------------------

BAD_OUTPUTS = {
    "wrong_shape": "returned shape (2, 5), expected (2, 6)",
    "wrong_dtype": "returned dtype torch.float64, expected torch.float32",
    "makes_nan": "produced NaN scores",
    "mutates_scores": "modified its input scores in place",
    "mutates_input_ids": "modified input_ids in place",
    "returns_list": "returned list, not a tensor",
    "raises_in_apply": "raised IndexError: index 7 is out of bounds",
}


@pytest.fixture
def bad_reg():  # type: ignore[no-untyped-def]
    reg = build_registry([*builtins(), source("bad-outputs", "lk_bad_outputs")], env={})
    assert reg.failures == []  # these load fine: only running them shows the problem
    return reg


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    return torch.tensor([[3, 4, 5], [5, 4, 3]]), torch.randn(2, 6)


@pytest.mark.parametrize("name", sorted(BAD_OUTPUTS))
def test_check_mode_names_the_processor_that_broke_the_contract(bad_reg, name: str) -> None:  # type: ignore[no-untyped-def]
    # The broken processor sits between two good ones, so the message must point at it, not at its neighbours.
    config = {"order": "listed", "processors": [{"temperature": 0.7}, name, {"top_k": 3}]}
    pipe = Pipeline.from_config(config, registry=bad_reg, check=True)
    ids, scores = inputs()
    with pytest.raises(ProcessorContractError) as info:
        pipe.next_tokens(ids, scores)
    assert f"processor {name!r}" in str(info.value)
    assert BAD_OUTPUTS[name] in str(info.value)


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        ("out_of_vocab", "selector 'out_of_vocab' chose ids outside the vocabulary: [6, 6]"),
        (
            "picks_removed",
            "selector 'picks_removed' chose a removed token (score -inf) in rows [0, 1]",
        ),
    ],
)
def test_check_mode_checks_the_selector_too(bad_reg, selector: str, message: str) -> None:  # type: ignore[no-untyped-def]
    config = {"processors": [{"top_k": 3}], "selector": selector}
    ids, scores = inputs()
    with pytest.raises(ProcessorContractError) as info:
        Pipeline.from_config(config, registry=bad_reg, check=True).next_tokens(ids, scores)
    assert str(info.value) == message
    unchecked = Pipeline.from_config(config, registry=bad_reg)
    if selector == "out_of_vocab":
        # The id range is checked always (issue 15): it costs nothing next to a step.
        with pytest.raises(ProcessorContractError, match="outside the vocabulary"):
            unchecked.next_tokens(ids, scores)
    else:
        # Unchecked, a removed pick goes through: check mode is what catches it.
        assert unchecked.next_tokens(ids, scores).shape == (2,)


def test_check_mode_from_the_environment(bad_reg, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("LOGITKIT_CHECK", "1")
    pipe = Pipeline.from_config({"processors": ["mutates_scores"]}, registry=bad_reg)
    assert pipe.check
    ids, scores = inputs()
    with pytest.raises(ProcessorContractError, match="'mutates_scores' modified its input scores"):
        pipe(ids, scores)
    # The explicit argument wins over the environment.
    assert not Pipeline.from_config(
        {"processors": ["mutates_scores"]}, registry=bad_reg, check=False
    ).check


def test_check_mode_passes_every_well_behaved_builtin_chain(reg) -> None:  # type: ignore[no-untyped-def]
    config = {
        "tokens": {"eos": [1]},
        "processors": [
            {"repetition_penalty": 1.3},
            {"no_repeat_ngram_size": 2},
            {"min_new_tokens": 2},
            {"suppress_tokens": [0]},
            {"temperature": 0.7},
            {"top_k": 4},
            {"top_p": 0.9},
            {"min_p": 0.05},
        ],
    }
    ids, scores = inputs()
    checked = Pipeline.from_config(config, check=True)
    plain = Pipeline.from_config(config, check=False)
    assert torch.equal(checked(ids, scores), plain(ids, scores))


def test_check_mode_is_off_by_default_and_costs_no_copies(
    bad_reg,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.delenv("LOGITKIT_CHECK", raising=False)
    pipe = Pipeline.from_config({"processors": ["mutates_scores", {"top_k": 3}]}, registry=bad_reg)
    assert pipe.check is False

    def no_checked_path(*args: object, **kwargs: object) -> None:
        raise AssertionError("the checked path ran without check mode")

    clones = []
    original_clone = torch.Tensor.clone

    def counting_clone(self: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        clones.append(tuple(self.shape))
        return original_clone(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "_process_checked", no_checked_path)
    monkeypatch.setattr(torch.Tensor, "clone", counting_clone)
    ids, scores = inputs()
    before = scores.clone()
    clones.clear()
    pipe.next_tokens(ids, scores)
    # Unchecked, the damage goes unnoticed: the input was halved in place, and nothing was copied to look.
    assert torch.allclose(scores, before * 0.5)
    # Nothing the size of the scores or the history was copied (the row state holds a few ints per row).
    assert [shape for shape in clones if shape in (tuple(scores.shape), tuple(ids.shape))] == []


def test_broken_processors_pass_unnoticed_only_without_check_mode() -> None:
    """The module's processors really do break their rules (so the checks above test something)."""
    ids, scores = inputs()
    for cls in lk_bad_outputs.BROKEN:
        if cls.name in (
            "wrong_shape",
            "wrong_dtype",
            "returns_list",
            "makes_nan",
            "raises_in_apply",
        ):
            continue
        kept_scores, kept_ids = scores.clone(), ids.clone()
        pipe = Pipeline([cls()], check=False)
        pipe(kept_ids, kept_scores)
        assert not (torch.equal(kept_scores, scores) and torch.equal(kept_ids, ids)), cls.name
