"""Strict numbers for every config model: no bools or strings where a number goes, no integer past int64.

pydantic's lax mode turns ``true`` into 1.0 and ``"0.7"`` into 0.7, while the
JSON Schema from ``logitkit schema`` rejects both; and an integer of 2**63 or
more validates and then overflows the first tensor it reaches. ``StrictModel``
closes both gaps for every field of every subclass, third-party ones included,
so ``validate``, the schema and the run agree.
"""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationInfo, field_validator

from logitkit.errors import short_repr

#: The widest integer a config may hold: every id, count and seed ends up in an int64 tensor.
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


def _leaf_types(annotation: Any) -> set[Any]:
    """The plain types a (possibly Optional / Union / Annotated / Literal) annotation accepts at its top."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _leaf_types(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        found: set[Any] = set()
        for arg in typing.get_args(annotation):
            found |= _leaf_types(arg)
        return found
    if origin is typing.Literal:
        return {type(v) for v in typing.get_args(annotation)}
    if annotation is Any:
        return {Any}
    return {origin or annotation}


def _item_annotation(annotation: Any) -> tuple[str, Any] | None:
    """``("list", item)`` or ``("dict", value)`` when the annotation is a container of one item type."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _item_annotation(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _item_annotation(inner[0]) if len(inner) == 1 else None
    args = typing.get_args(annotation)
    if origin in (list, set, frozenset) and args:
        return "list", args[0]
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return "list", args[0]
    if origin is dict and len(args) == 2:
        return "dict", args[1]
    return None


def number_problem(value: Any, annotation: Any) -> str | None:
    """Why ``value`` may not stand for a field of type ``annotation`` (None when it may)."""
    leaves = _leaf_types(annotation)
    if Any in leaves:
        return None
    numeric = bool(leaves & {int, float})
    kind = "a number" if float in leaves else "an integer"
    if isinstance(value, bool):
        if numeric and bool not in leaves:
            return f"must be {kind}, not a boolean (got {short_repr(value)})"
        return None
    if isinstance(value, int) and not (INT64_MIN <= value <= INT64_MAX):
        return f"must be an integer between -2**63 and 2**63 - 1 (got {short_repr(value)})"
    if isinstance(value, str) and numeric and str not in leaves:
        return f"must be {kind}, not a string (got {short_repr(value)})"
    return None


def _walk(value: Any, annotation: Any, path: str) -> str | None:
    problem = number_problem(value, annotation)
    if problem is not None:
        return f"item {path}: {problem}" if path else problem
    inner = _item_annotation(annotation)
    if inner is None:
        return None
    kind, item = inner
    if kind == "list" and isinstance(value, (list, tuple)):
        for i, element in enumerate(value):
            found = _walk(element, item, f"{path}[{i}]")
            if found:
                return found
    elif kind == "dict" and isinstance(value, dict):
        for key, element in value.items():
            # Keys are left to pydantic (JSON keys are strings), but an int key must still fit int64.
            if isinstance(key, int) and not isinstance(key, bool) and not (INT64_MIN <= key <= INT64_MAX):
                return f"{path}[{key}]: must be an integer between -2**63 and 2**63 - 1"
            found = _walk(element, item, f"{path}[{key!r}]")
            if found:
                return found
    return None


class StrictModel(BaseModel):
    """A config model whose numbers are numbers: see the module docstring."""

    @field_validator("*", mode="before")
    @classmethod
    def _strict_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None:
            return value
        problem = _walk(value, field.annotation, "")
        if problem is not None:
            raise ValueError(problem)
        return value
