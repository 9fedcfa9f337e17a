"""``contract_tests(plugin)``: the standard contract tests for every processor and selector of a plugin."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from logitkit.processor import TokenSettings
from logitkit.registry import Registry, build_registry
from logitkit.testing.contract import (
    DEFAULT_EXAMPLES,
    check_processor_contract,
    check_selector_contract,
)
from logitkit.testing.rows import check_row_contract

#: Per-name example configs: one mapping, or a list of them (each becomes its own test).
Configs = Mapping[str, Mapping[str, Any] | Sequence[Mapping[str, Any]]]


def _as_list(
    value: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
) -> list[Mapping[str, Any]]:
    if value is None:
        return [{}]
    if isinstance(value, Mapping):
        return [value]
    return list(value)


def contract_cases(
    plugin: str,
    configs: Configs | None = None,
    *,
    skip: Iterable[str] = (),
    registry: Registry | None = None,
) -> list[tuple[str, str, type, Mapping[str, Any]]]:
    """``(kind, name, cls, config)`` for every processor and selector ``plugin`` registers."""
    reg = registry if registry is not None else build_registry()
    configs = configs or {}
    skipped = set(skip)
    cases: list[tuple[str, str, type, Mapping[str, Any]]] = []
    for kind, entries in (("processor", reg.processors), ("selector", reg.selectors)):
        for name, entry in sorted(entries.items()):
            if entry.plugin != plugin or name in skipped or getattr(entry.cls, "code_only", False):
                continue
            cases.extend((kind, name, entry.cls, config) for config in _as_list(configs.get(name)))
    return cases


def contract_tests(
    plugin: str,
    configs: Configs | None = None,
    *,
    skip: Iterable[str] = (),
    examples: int = DEFAULT_EXAMPLES,
    tokens: TokenSettings | None = None,
    context: Mapping[str, Any] | None = None,
    derandomize: bool = True,
    vocab: tuple[int, int] = (2, 48),
) -> Callable[..., None]:
    """A pytest test, parametrized over every processor and selector that ``plugin`` registers.

    In a plugin's test module, one line gives it the standard contract tests::

        test_contract = logitkit.testing.contract_tests("my_plugin", configs={"my_proc": {"strength": 2.0}})

    ``plugin`` is the entry-point name. ``configs`` gives example configs for processors
    whose defaults do not exercise them (a list runs each one); the others are built from
    their ``Config()`` defaults. ``skip`` names entries to leave out. Inputs are the same on
    every run unless ``derandomize=False``. ``tokens`` (the
    config's ``tokens:`` section) and ``context`` (e.g. ``{"model": fake_model}``) reach
    every check. Each entry also runs ``check_row_contract`` (rows alone and in mixed
    batches, continuous batching, fresh states, threads). ``vocab`` is the (smallest,
    largest) vocabulary size to generate (default 2..48); a processor bound to a tokenizer
    needs one as large as its vocabulary, e.g. ``vocab=(tok.vocab_size, tok.vocab_size)``.
    When the plugin
    registers nothing (not installed, or failed to load), the test fails and says so.
    """
    import pytest

    reg = build_registry()
    cases = contract_cases(plugin, configs, skip=skip, registry=reg)
    failure = next((f for f in reg.failures if f.plugin == plugin), None)
    if not cases:
        reason = (
            failure.line()
            if failure
            else f"plugin {plugin!r} registered no processors or selectors; is it installed?"
        )
        params = [pytest.param(None, None, None, None, id=f"{plugin}-missing")]
    else:
        reason = ""
        counts: dict[str, int] = {}
        params = []
        for kind, name, cls, config in cases:
            counts[name] = counts.get(name, 0) + 1
            case_id = name if counts[name] == 1 else f"{name}-{counts[name]}"
            params.append(pytest.param(kind, name, cls, config, id=case_id))

    @pytest.mark.parametrize(("kind", "name", "cls", "config"), params)
    def test_contract(
        kind: str | None, name: str | None, cls: type | None, config: Mapping[str, Any] | None
    ) -> None:
        if cls is None:
            pytest.fail(reason)
        check = check_processor_contract if kind == "processor" else check_selector_contract
        check(
            cls, config, examples=examples, tokens=tokens, context=context, derandomize=derandomize,
            vocab=vocab,
        )  # fmt: skip
        check_row_contract(cls, config, tokens=tokens, context=context, vocab=vocab[1])

    return test_contract  # type: ignore[no-any-return]  # pytest's decorator is untyped
