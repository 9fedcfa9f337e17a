"""The JSON Schema of a pipeline config, assembled from the registry so editors can complete any processor."""

from __future__ import annotations

from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from logitkit.config import BUILTIN_ORDERS
from logitkit.processor import TokenSettings
from logitkit.registry import Registry
from logitkit.settings import GenerationSettings


def _entry_models(name: str, cls: type[Any]) -> list[type[BaseModel]]:
    config: type[BaseModel] = cls.Config
    title = "".join(part.capitalize() for part in name.replace(".", "_").split("_"))
    full = create_model(
        f"{title}Entry",
        __base__=config,
        name=(Literal[name], Field(description=f"the {name!r} processor")),  # type: ignore[call-overload, arg-type]
    )
    nested = create_model(
        f"{title}Nested",
        __config__=ConfigDict(extra="forbid"),
        **{name: (config, ...)},  # type: ignore[call-overload]
    )
    models: list[type[BaseModel]] = [full, nested]
    primary = cls.primary or (name if name in config.model_fields else None)
    if primary is not None:
        info = config.model_fields[primary]
        short = create_model(
            f"{title}Shorthand",
            __config__=ConfigDict(extra="forbid"),
            **{name: (info.annotation, Field(..., description=info.description, json_schema_extra=None))},  # type: ignore[call-overload]
        )
        # Carry the primary field's range into the shorthand.
        short.model_fields[name].metadata = list(info.metadata)
        short.model_rebuild(force=True)
        models.append(short)
    return models


def _selector_model(name: str, cls: type[Any]) -> type[BaseModel]:
    config: type[BaseModel] = cls.Config
    title = "".join(part.capitalize() for part in name.replace(".", "_").split("_"))
    model: type[BaseModel] = create_model(
        f"{title}Selector",
        __base__=config,
        name=(Literal[name], Field(description=f"the {name!r} selector")),  # type: ignore[call-overload, arg-type]
    )
    return model


def build_json_schema(reg: Registry) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) for logitkit config files."""
    entries: list[Any] = []
    for entry in sorted(reg.processors.values(), key=lambda e: e.name):
        if getattr(entry.cls, "code_only", False):
            continue
        entries.extend(_entry_models(entry.name, entry.cls))
    entries.extend(Literal[name] for name in sorted(reg.processors))  # type: ignore[misc]
    selector_names = tuple(sorted(reg.selectors)) or ("greedy",)
    # A selector mapping is checked against that selector's own fields, as validation does.
    selector_models = [_selector_model(entry.name, entry.cls) for entry in sorted(reg.selectors.values(), key=lambda e: e.name)]
    orders = (*BUILTIN_ORDERS, *sorted(reg.order_presets))
    presets = tuple(sorted(reg.config_presets))
    processor_entry = Union[tuple(entries)] if entries else Any  # type: ignore[valid-type]  # noqa: UP007
    fields: dict[str, Any] = {
        "order": (Literal[orders], "stage"),  # type: ignore[valid-type]
        "tokens": (TokenSettings, None),
        "processors": (list[processor_entry], []),  # type: ignore[valid-type]
        "selector": (Union[(Literal[selector_names], *selector_models, None)], None),  # type: ignore[valid-type]
        "generation": (GenerationSettings, None),
        "on_empty_row": (Literal["top", "error"], "top"),
    }
    if presets:
        fields["preset"] = (Literal[presets] | None, None)  # type: ignore[valid-type]
    else:
        fields["preset"] = (str | None, None)
    model = create_model("LogitkitConfig", __config__=ConfigDict(extra="forbid"), **fields)
    schema: dict[str, Any] = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "logitkit pipeline config"
    return schema
