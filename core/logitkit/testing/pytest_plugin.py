"""logitkit's pytest plugin (entry point ``pytest11``): contract-check fixtures for plugin authors.

It imports nothing heavy at load time, so it costs nothing in test runs that do not use it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import pytest


@pytest.fixture
def processor_contract() -> Callable[..., None]:
    """``processor_contract(cls_or_instance, config=None, **options)``: run the processor contract."""
    import logitkit.testing as kit  # says what to install when hypothesis is missing

    return cast(Callable[..., None], kit.check_processor_contract)


@pytest.fixture
def selector_contract() -> Callable[..., None]:
    """``selector_contract(cls_or_instance, config=None, **options)``: run the selector contract."""
    import logitkit.testing as kit

    return cast(Callable[..., None], kit.check_selector_contract)
