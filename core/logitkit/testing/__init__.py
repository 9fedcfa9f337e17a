"""The plugin author's kit: the processor contract, hypothesis strategies, and one-line contract tests.

``logitkit.testing`` needs ``hypothesis`` and ``pytest`` (``pip install logitkit[test]``).
It is also a pytest plugin (entry point ``pytest11``), so a plugin's tests get the
``processor_contract`` and ``selector_contract`` fixtures without any import.

Typical use in a plugin's test module::

    from logitkit.testing import contract_tests

    test_contract = contract_tests("my_plugin")
"""

from __future__ import annotations

from logitkit.testing.contract import (
    DEFAULT_EXAMPLES,
    ContractViolation,
    check_processor_case,
    check_processor_contract,
    check_selector_case,
    check_selector_contract,
    context_for,
    factory_for,
)
from logitkit.testing.rows import (
    ScriptedModel,
    check_row_contract,
    continuous_batching_run,
    solo_run,
)
from logitkit.testing.strategies import DTYPES, StepCase, dtypes, histories, logits, step_cases
from logitkit.testing.suite import contract_cases, contract_tests

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
