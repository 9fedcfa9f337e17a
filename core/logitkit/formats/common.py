"""What every format translation shares: the loss report and the canonical logitkit config.

Each translation goes through a plain logitkit config dict. A parameter that
cannot be carried over is never dropped silently: it becomes a ``Loss`` naming
the parameter and the reason. A parameter carried over with a known difference
in meaning becomes a ``Note``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from logitkit.config import ProcessorSpec, ResolvedConfig, resolve, sort_specs
from logitkit.registry import Registry
from logitkit.registry import registry as default_registry
from logitkit.stages import Stage


@dataclass(frozen=True)
class Loss:
    """A parameter that could not be carried over, and why."""

    parameter: str
    reason: str

    def line(self) -> str:
        return f"not carried over: {self.parameter}: {self.reason}"


@dataclass(frozen=True)
class Note:
    """A parameter carried over whose meaning differs slightly in the target format."""

    parameter: str
    difference: str

    def line(self) -> str:
        return f"carried with a difference: {self.parameter}: {self.difference}"


@dataclass
class Conversion:
    """The translated value plus everything the translation could not carry exactly."""

    value: Any
    lost: list[Loss] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)

    def lose(self, parameter: str, reason: str) -> None:
        self.lost.append(Loss(parameter, reason))

    def note(self, parameter: str, difference: str) -> None:
        self.notes.append(Note(parameter, difference))

    @property
    def lossless(self) -> bool:
        return not self.lost

    def report(self) -> list[str]:
        return [loss.line() for loss in self.lost] + [note.line() for note in self.notes]


def primary_field(cls: Any) -> str | None:
    """The field ``- name: value`` sets: ``cls.primary``, else a field named like the processor."""
    fields = cls.Config.model_fields
    primary: str | None = cls.primary or (cls.name if cls.name in fields else None)
    return primary


def changed_fields(config: BaseModel) -> dict[str, Any]:
    """The fields whose value differs from the default."""
    return config.model_dump(exclude_defaults=True)


def entry_for(name: str, cls: Any, config: BaseModel) -> Any:
    """The shortest config entry for a processor: a bare name, the shorthand, or the full mapping."""
    fields = changed_fields(config)
    primary = primary_field(cls)
    if primary is not None and primary not in fields:
        # The primary value stays explicit even at its default: "- top_k: 50" reads better than "- top_k".
        fields = {primary: getattr(config, primary), **fields}
    if not fields:
        return name
    if primary is not None and list(fields) == [primary]:
        return {name: fields[primary]}
    return {"name": name, **fields}


def placed_entry(entry: Any, spec: ProcessorSpec) -> Any:
    """An entry with its ``stage:`` / ``priority:`` override, in the full form that can carry them."""
    if not spec.placement:
        return entry
    if isinstance(entry, str):
        entry = {"name": entry}
    elif "name" not in entry:
        primary = primary_field(spec.cls)
        entry = {"name": spec.name, **({primary: entry[spec.name]} if primary else {})}
    return {**entry, **dict(spec.placement)}


def samples(classes: list[Any]) -> bool:
    """The default selector's rule: sample when a temperature or truncation stage is present."""
    return any(int(Stage.TEMPERATURE) <= int(cls.stage) < int(Stage.WATERMARK) for cls in classes)


def selects_greedily(resolved: ResolvedConfig) -> bool:
    """True when the run picks the top token: a greedy selector, set or chosen by default."""
    if resolved.selector is None:
        return not samples([s.cls for s in resolved.processors])
    return resolved.selector.name == "greedy"


def canonical(
    config: Any, registry: Registry | None = None, *, source: str | None = None
) -> dict[str, Any]:
    """A config in its shortest equivalent form, so two configs that run the same compare equal.

    Defaults are dropped, entries use the shorthand where they can, ``order`` is
    kept only when it changes the run order, and the selector only when it is
    not the one logitkit would choose anyway. Raises ``ConfigError`` when invalid.
    """
    reg = registry if registry is not None else default_registry()
    resolved = resolve(config, registry=reg, source=source)
    return canonical_resolved(resolved, reg)


def canonical_resolved(resolved: ResolvedConfig, reg: Registry) -> dict[str, Any]:
    out: dict[str, Any] = {}
    run = list(resolved.processors)
    by_stage = sort_specs(run, "stage", reg)
    if [s.name for s in by_stage] != [s.name for s in run]:
        out["order"] = resolved.order if resolved.order not in ("stage", "listed") else "listed"
    tokens = resolved.tokens.model_dump(exclude_none=True)
    if tokens:
        out["tokens"] = tokens
    out["processors"] = [placed_entry(entry_for(s.name, s.cls, s.config), s) for s in run]
    selector = resolved.selector
    if selector is not None:
        default = "sample" if samples([s.cls for s in run]) else "greedy"
        fields = changed_fields(selector.config)
        if selector.name != default or fields:
            out["selector"] = {"name": selector.name, **fields} if fields else selector.name
    generation = changed_fields(resolved.generation)
    if generation:
        out["generation"] = generation
    if resolved.on_empty_row is not None:
        out["on_empty_row"] = resolved.on_empty_row
    return out


def run_order(
    config: Any, registry: Registry | None = None
) -> tuple[ResolvedConfig, list[ProcessorSpec]]:
    """The resolved config and its processors in run order."""
    reg = registry if registry is not None else default_registry()
    resolved = resolve(config, registry=reg)
    return resolved, list(resolved.processors)
