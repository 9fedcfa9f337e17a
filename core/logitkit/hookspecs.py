"""Every hook a logitkit plugin can implement.

Each hook receives a ``register`` callback and is called once, when the
plugin manager loads. Hooks take keyword arguments only (pluggy's rule).
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("logitkit")
hookimpl = pluggy.HookimplMarker("logitkit")


@hookspec
def register_processors(register: Callable[..., None]) -> None:
    """Register processor classes: ``register(cls, replace=False)``."""


@hookspec
def register_selectors(register: Callable[..., None]) -> None:
    """Register selector classes, the last element of a chain: ``register(cls, replace=False)``."""


@hookspec
def register_order_presets(register: Callable[..., None]) -> None:
    """Register named orders: ``register(name, reorder, description="")``.

    ``reorder`` receives the processor classes in stage order and returns them in the preset's order.
    """


@hookspec
def register_config_presets(register: Callable[..., None]) -> None:
    """Register named config fragments usable as ``preset: NAME``: ``register(name, config_dict, description="")``."""


@hookspec
def register_stopping_criteria(register: Callable[..., None]) -> None:
    """Register stopping-criterion classes for ``logitkit.generate``: ``register(cls, replace=False)``.

    ``cls`` subclasses ``logitkit.stopping.StoppingCriterion``: ``from_settings(context)``
    builds it for one generation (or returns None), ``check(sequences, step)`` names the rows
    that stop, and ``reason`` is the finish reason it reports (see docs/generation.md).
    """


@hookspec
def register_search_strategies(register: Callable[..., None]) -> None:
    """Register search strategies (greedy/sample, beam, ...): ``register(name, strategy, description="")``.

    ``strategy(job)`` takes a ``logitkit.decoding.DecodingJob`` and returns a
    ``logitkit.decoding.GenerationOutput``; the ``search`` setting selects it by name.
    A strategy with parameters of its own declares them as a pydantic model in
    ``strategy.Config``: ``generation.search_options`` is validated against it
    with the config, and the strategy reads it with
    ``strategy.Config.model_validate(job.settings.search_options)``.
    """

