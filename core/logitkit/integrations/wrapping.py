"""Any transformers ``LogitsProcessor`` as a stage-placed logitkit processor.

``wrap(hf_processor, name=..., stage=...)`` gives a processor instance for
``Pipeline([...])``; ``wrap_class`` gives a class to register, so the wrapped
processor is listed, ordered by its stage and usable by name in a config built
in the same process; ``as_plugin(*classes)`` turns such classes into an inline
plugin for ``build_registry(inline=...)``.

transformers processors may write into ``scores`` (several do); the wrapper
hands them copies, so the logitkit contract (inputs never mutated) holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from logitkit.hookspecs import hookimpl
from logitkit.processor import EmptyConfig, Processor, StepContext
from logitkit.stages import Stage, coerce_stage


class WrappedLogitsProcessor(Processor):
    """Runs a transformers ``LogitsProcessor`` (``processor(input_ids, scores)``) at a declared stage."""

    name: ClassVar[str] = "wrapped"
    stage: ClassVar[int] = Stage.LOGITS
    Config = EmptyConfig
    #: The transformers processor (any callable with its signature).
    hf_processor: ClassVar[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        out = type(self).hf_processor(ctx.input_ids.clone(), scores.clone())
        if not isinstance(out, torch.Tensor) or out.shape != scores.shape:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise RuntimeError(
                f"wrapped processor {self.name!r} returned {got}, expected {tuple(scores.shape)}"
            )
        return out.to(scores.dtype)


def wrap_class(
    hf_processor: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    name: str,
    stage: int | str | Stage = Stage.LOGITS,
    priority: int = 0,
    argmax_invariant: bool = False,
    summary: str = "",
) -> type[WrappedLogitsProcessor]:
    """A processor class running ``hf_processor``; register it like any processor class."""
    if not callable(hf_processor):
        raise TypeError(
            f"expected a transformers LogitsProcessor (callable), got {type(hf_processor).__name__}"
        )
    if not name.isidentifier():
        raise ValueError(f"name must be an identifier, got {name!r}")
    attrs: dict[str, Any] = {
        "name": name,
        "stage": coerce_stage(stage),
        "priority": priority,
        "argmax_invariant": argmax_invariant,
        "summary": summary or f"transformers {type(hf_processor).__name__}, wrapped",
        "hf_processor": staticmethod(hf_processor),
        "needs": frozenset({"input_ids"}),
        "__doc__": f"Wrapped transformers processor {type(hf_processor).__name__}.",
    }
    return type(f"Wrapped_{name}", (WrappedLogitsProcessor,), attrs)


def wrap(
    hf_processor: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    name: str,
    stage: int | str | Stage = Stage.LOGITS,
    priority: int = 0,
    argmax_invariant: bool = False,
) -> WrappedLogitsProcessor:
    """A processor instance running ``hf_processor`` at ``stage``, for ``Pipeline([...])``."""
    cls = wrap_class(
        hf_processor, name=name, stage=stage, priority=priority, argmax_invariant=argmax_invariant
    )
    return cls()


class _InlinePlugin:
    def __init__(self, classes: tuple[type[Processor], ...]) -> None:
        self.classes = classes

    @hookimpl
    def register_processors(self, register: Callable[..., None]) -> None:
        for cls in self.classes:
            register(cls)


def as_plugin(*classes: type[Processor]) -> object:
    """An inline plugin registering ``classes``: ``build_registry(inline={"mine": as_plugin(cls)})``."""
    return _InlinePlugin(classes)
