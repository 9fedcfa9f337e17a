"""Safety: configs cannot import code, nothing on the config path unpickles or evaluates, blocked plugins stay unimported."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import logitkit
from logitkit import ConfigError, Pipeline
from logitkit.config import problems_of
from logitkit.plugins import PluginSource
from logitkit.registry import build_registry

CANARY = "lk_import_canary"
CORE = Path(logitkit.__file__).parent
BUILTINS = Path(__import__("logitkit_builtins").__file__).parent


@pytest.fixture
def no_canary(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("LOGITKIT_ALLOW_IMPORT", raising=False)
    sys.modules.pop(CANARY, None)
    yield
    sys.modules.pop(CANARY, None)


def canary_config(offset: float = 1.5) -> dict[str, object]:
    return {"processors": [{"name": f"{CANARY}:Canary", "offset": offset}]}


def test_an_import_path_is_refused_by_default_and_never_imported(
    no_canary: None, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"processors:\n  - name: {CANARY}:Canary\n    offset: 1.5\n  - {CANARY}:Canary: {{offset: 2}}\n",
        encoding="utf-8",
    )
    problems = problems_of(path)
    assert [p.path for p in problems] == ["processors[0].name", "processors[1].name"]
    assert all(
        "refused; set LOGITKIT_ALLOW_IMPORT=1 or pass allow_import=True" in p.reason
        for p in problems
    )
    assert CANARY not in sys.modules


def test_the_environment_allows_import_paths(
    no_canary: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOGITKIT_ALLOW_IMPORT", "1")
    pipe = Pipeline.from_config(canary_config())
    assert [p.name for p in pipe.processors] == ["canary"]
    assert torch.equal(
        pipe(torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 3)), torch.full((1, 3), 1.5)
    )
    # The explicit flag wins over the environment.
    sys.modules.pop(CANARY, None)
    with pytest.raises(ConfigError, match="refused"):
        Pipeline.from_config(canary_config(), allow_import=False)
    assert CANARY not in sys.modules


def test_the_api_flag_allows_import_paths(no_canary: None) -> None:
    pipe = Pipeline.from_config(canary_config(0.5), allow_import=True)
    assert pipe.processors[0].config.offset == 0.5  # type: ignore[attr-defined]
    assert CANARY in sys.modules


def test_an_allowed_import_must_still_be_a_processor(no_canary: None) -> None:
    problems = problems_of(
        {"processors": [f"{CANARY}:not_a_processor", "os:system", "no_such_module_xyz:Thing"]},
        allow_import=True,
    )
    assert [p.path for p in problems] == [
        "processors[0].name",
        "processors[1].name",
        "processors[2].name",
    ]
    assert (
        "is not a logitkit Processor" in problems[0].reason
        and "is not a logitkit Processor" in problems[1].reason
    )
    assert "cannot import 'no_such_module_xyz:Thing': ModuleNotFoundError" in problems[2].reason


def test_other_sections_never_import(no_canary: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only processor names can ever be import paths; selector, order and preset are registry names only."""
    monkeypatch.setenv("LOGITKIT_ALLOW_IMPORT", "1")
    problems = problems_of(
        {
            "selector": f"{CANARY}:Canary",
            "order": f"{CANARY}:not_a_processor",
            "preset": f"{CANARY}:Canary",
        }
    )
    assert sorted(p.path for p in problems) == ["order", "preset", "selector"]
    assert CANARY not in sys.modules


# -- no unpickling, eval or unsafe YAML anywhere on the config path ------------------------------------

#: Modules that deserialise arbitrary objects.
UNSAFE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "joblib",
    "marshal",
    "shelve",
    "jsonpickle",
}
#: Builtins that run strings as code.
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}
#: yaml functions and loaders that can build arbitrary Python objects.
UNSAFE_YAML = {
    "load",
    "load_all",
    "unsafe_load",
    "unsafe_load_all",
    "full_load",
    "full_load_all",
    "Loader",
    "UnsafeLoader",
    "FullLoader",
}
#: The only places allowed to import a module by name: the CLI's fixed command modules, and the import-path gate.
IMPORT_BY_NAME_ALLOWED = {("cli.py", "build_parser"), ("config.py", "_import_class")}


def sources() -> list[Path]:
    return sorted([*CORE.rglob("*.py"), *BUILTINS.rglob("*.py")])


def unsafe_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[str] = []
    enclosing: dict[int, str] = {}
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                enclosing[id(node)] = (
                    fn.name
                )  # ast.walk goes outside in: the innermost function wins
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            found += [
                f"{where} imports {a.name}"
                for a in node.names
                if a.name.split(".")[0] in UNSAFE_MODULES
            ]
        elif (
            isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES
        ):
            found.append(f"{where} imports from {node.module}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in UNSAFE_BUILTINS:
                found.append(f"{where} calls {func.id}()")
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                owner, attr = func.value.id, func.attr
                if owner == "torch" and attr == "load":
                    safe = any(
                        k.arg == "weights_only"
                        and isinstance(k.value, ast.Constant)
                        and k.value.value is True
                        for k in node.keywords
                    )
                    if not safe:
                        found.append(f"{where} calls torch.load without weights_only=True")
                if (
                    owner == "importlib"
                    and attr == "import_module"
                    and (path.name, enclosing.get(id(node))) not in IMPORT_BY_NAME_ALLOWED
                ):
                    found.append(f"{where} imports a module by name")
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "yaml"
            and node.attr in UNSAFE_YAML
        ):
            found.append(f"{where} uses yaml.{node.attr}")
    return found


def test_no_pickle_eval_or_unsafe_yaml_in_the_core_or_the_builtins() -> None:
    offenders = [use for path in sources() for use in unsafe_uses(path)]
    assert offenders == []


def test_the_scan_would_catch_each_unsafe_use(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import pickle\nfrom dill import loads\nimport yaml, torch, importlib\n"
        "eval('1')\nexec('x = 1')\nyaml.load('a', Loader=yaml.Loader)\nyaml.unsafe_load('a')\n"
        "torch.load('w.pt')\ntorch.load('w.pt', weights_only=True)\nimportlib.import_module('os')\n"
        "model.eval()\nre.compile('x')\n",
        encoding="utf-8",
    )
    found = unsafe_uses(bad)
    assert len(found) == 9, found
    assert not any(":11 " in f or ":12 " in f or ":9 " in f for f in found), found


def test_the_import_gate_is_the_only_caller_of_import_class() -> None:
    callers = [
        f"{path.name}:{node.lineno}"
        for path in sources()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "_import_class"
    ]
    assert len(callers) == 1 and callers[0].startswith("config.py:")
    source = (CORE / "config.py").read_text(encoding="utf-8")
    gate = source[source.index("def lookup_processor") : source.index("def expand_shorthand")]
    assert gate.index("if not self.allow_import") < gate.index("_import_class(")


def test_configs_are_parsed_with_the_safe_yaml_loader(tmp_path: Path) -> None:
    path = tmp_path / "tag.yaml"
    path.write_text(
        "processors:\n  - !!python/object/apply:os.system ['echo pwned']\n", encoding="utf-8"
    )
    (problem,) = problems_of(path)
    assert "YAML tag not allowed" in problem.reason


# -- block-list and allow-list ------------------------------------------------------------------


def canary_source() -> PluginSource:
    from importlib.metadata import EntryPoint

    return PluginSource(
        "canary", "1.0", False, entry_point=EntryPoint("canary", CANARY, "logitkit")
    )


@pytest.mark.parametrize(
    "env",
    [
        {"LOGITKIT_DISABLE_PLUGINS": "canary"},
        {"LOGITKIT_DISABLE_PLUGINS": "other, canary ,x"},
        {"LOGITKIT_PLUGINS": "something_else"},
        {"LOGITKIT_PLUGINS": ""},
        {"LOGITKIT_DISABLE_PLUGIN_AUTOLOAD": "1"},
        {"LOGITKIT_PLUGINS": "canary", "LOGITKIT_DISABLE_PLUGINS": "canary"},
    ],
)
def test_blocked_plugins_are_never_imported(no_canary: None, env: dict[str, str]) -> None:
    reg = build_registry([canary_source()], env=env)
    assert reg.skipped == ["canary"] and reg.failures == []
    assert CANARY not in sys.modules


def test_allowed_plugins_are_imported(no_canary: None) -> None:
    reg = build_registry([canary_source()], env={"LOGITKIT_PLUGINS": "canary"})
    assert reg.skipped == [] and [p.name for p in reg.plugins] == ["canary"]
    assert CANARY in sys.modules
