"""The plugin author's kit: the processor contract, hypothesis strategies, and one-line contract tests.

``logitkit.testing`` needs ``hypothesis`` and ``pytest`` (``pip install logitkit[testing]``); they
are imported on first use, so the pytest plugin loads without them.
It is also a pytest plugin (entry point ``pytest11``), so a plugin's tests get the
``processor_contract`` and ``selector_contract`` fixtures without any import.

Typical use in a plugin's test module::

    from logitkit.testing import contract_tests

    test_contract = contract_tests("my_plugin")
"""

from __future__ import annotations

from typing import Any

# Loaded on first use, not here: this package is also the pytest11 plugin's parent, so
# importing hypothesis at load would break every pytest run in a venv without it.
_HOMES = {
    "DEFAULT_EXAMPLES": "contract",
    "ContractViolation": "contract",
    "check_processor_case": "contract",
    "check_processor_contract": "contract",
    "check_selector_case": "contract",
    "check_selector_contract": "contract",
    "context_for": "contract",
    "factory_for": "contract",
    "DTYPES": "strategies",
    "StepCase": "strategies",
    "dtypes": "strategies",
    "histories": "strategies",
    "logits": "strategies",
    "step_cases": "strategies",
    "ScriptedModel": "rows",
    "check_row_contract": "rows",
    "continuous_batching_run": "rows",
    "solo_run": "rows",
    "contract_cases": "suite",
    "contract_tests": "suite",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'logitkit.testing' has no attribute {name!r}")
    try:
        # Static imports (no import by name), one per home module.
        if home == "contract":
            from logitkit.testing import contract as module
        elif home == "strategies":
            from logitkit.testing import strategies as module  # type: ignore[no-redef]
        elif home == "rows":
            from logitkit.testing import rows as module  # type: ignore[no-redef]
        else:
            from logitkit.testing import suite as module  # type: ignore[no-redef]
    except ModuleNotFoundError as exc:
        if exc.name != "hypothesis":
            raise
        raise ModuleNotFoundError(
            "logitkit.testing needs hypothesis: pip install 'logitkit[testing]'", name="hypothesis"
        ) from None
    return getattr(module, name)


__all__ = [
    "DEFAULT_EXAMPLES",
    "DTYPES",
    "ContractViolation",
    "ScriptedModel",
    "StepCase",
    "check_processor_case",
    "check_processor_contract",
    "check_row_contract",
    "check_selector_case",
    "check_selector_contract",
    "context_for",
    "continuous_batching_run",
    "contract_cases",
    "contract_tests",
    "dtypes",
    "factory_for",
    "histories",
    "logits",
    "solo_run",
    "step_cases",
]
