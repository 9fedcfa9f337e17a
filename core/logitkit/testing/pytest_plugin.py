"""logitkit's pytest plugin (entry point ``pytest11``): contract-check fixtures for plugin authors.

It imports nothing heavy at load time, so it costs nothing in test runs that do not use it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest


@pytest.fixture
def processor_contract() -> Callable[..., None]:
    """``processor_contract(cls_or_instance, config=None, **options)``: run the processor contract."""
    from logitkit.testing import check_processor_contract

    return check_processor_contract


@pytest.fixture
def selector_contract() -> Callable[..., None]:
    """``selector_contract(cls_or_instance, config=None, **options)``: run the selector contract."""
    from logitkit.testing import check_selector_contract

    return check_selector_contract
