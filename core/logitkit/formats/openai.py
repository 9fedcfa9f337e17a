"""OpenAI chat-completions sampling parameters <-> logitkit config.

OpenAI's sampling parameters are ``temperature`` (0..2), ``top_p``,
``frequency_penalty`` and ``presence_penalty`` (-2..2), ``logit_bias``
(token id -> -100..100), ``seed``, ``stop``, ``max_tokens`` /
``max_completion_tokens`` and ``n``. ``response_format`` (``json_schema``,
``json_object``) maps to the ``json_schema`` constraint. The penalties and
``logit_bias`` come from the built-ins' ``engines`` family; their names
resolve through the registry when the config is built, so the core imports
no plugin.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logitkit.formats.common import Conversion, changed_fields, run_order, selects_greedily
from logitkit.registry import Registry

#: Parameters that shape the request or the response, not the sampling.
NOT_SAMPLING = {
    "model", "messages", "stream", "stream_options", "logprobs", "top_logprobs",
    "tools", "tool_choice", "parallel_tool_calls", "user", "store", "metadata", "modalities",
    "audio", "prediction", "reasoning_effort", "service_tier", "functions", "function_call",
    "web_search_options",
}  # fmt: skip
PROCESSOR_PARAMS = ("logit_bias", "frequency_penalty", "presence_penalty", "temperature", "top_p")


def from_openai(params: Mapping[str, Any]) -> Conversion:
    """A logitkit config dict from OpenAI chat-completions parameters."""
    conv = Conversion({})
    processors: list[Any] = []
    generation: dict[str, Any] = {}
    greedy = False
    for key, value in params.items():
        if key in PROCESSOR_PARAMS:
            if value is None:
                continue
            if key == "logit_bias":
                processors.append({key: {int(k): v for k, v in dict(value).items()}})
            elif key == "temperature" and value == 0:
                greedy = True
            else:
                processors.append({key: value})
        elif key == "seed":
            if value is not None:
                conv.value["selector"] = {"name": "sample", "seed": value}
                conv.note(
                    "seed",
                    "logitkit's sampler draws different random numbers than OpenAI's servers",
                )
        elif key == "stop":
            if value is not None:
                generation["stop_strings"] = [value] if isinstance(value, str) else list(value)
        elif key in ("max_tokens", "max_completion_tokens"):
            if value is not None:
                generation["max_new_tokens"] = value
        elif key == "n":
            if value is not None and value != 1:
                generation["num_return_sequences"] = value
        elif key == "response_format":
            constraint = response_format_constraint(value, conv)
            if constraint is not None:
                processors.append(constraint)
        elif key in NOT_SAMPLING:
            conv.lose(key, "not a sampling parameter; logitkit configs describe sampling only")
        else:
            conv.lose(key, "not an OpenAI chat-completions sampling parameter logitkit knows")
    if greedy:
        if "selector" in conv.value:
            conv.lose("seed", "temperature 0 picks greedily, so the seed has no effect")
            conv.notes = [n for n in conv.notes if n.parameter != "seed"]
        conv.value["selector"] = "greedy"
        conv.note("temperature", "OpenAI at temperature 0 is near-greedy; logitkit picks the top token")
    conv.value["processors"] = processors
    if generation:
        conv.value["generation"] = generation
    return conv


#: The schema of OpenAI's ``json_object`` mode, and the json_schema processor's default.
ANY_OBJECT = {"type": "object"}


def response_format_constraint(value: Any, conv: Conversion) -> dict[str, Any] | None:
    """The ``json_schema`` processor entry for an OpenAI ``response_format``, or None (plain text)."""
    kind = value.get("type") if isinstance(value, Mapping) else None
    if value is None or kind == "text":
        return None
    if kind == "json_object":
        return {"json_schema": {"json_schema": dict(ANY_OBJECT)}}
    if kind == "json_schema" and isinstance(value.get("json_schema"), Mapping) and isinstance(
        value["json_schema"].get("schema"), Mapping
    ):
        if value["json_schema"].get("strict") is False:
            conv.note("response_format.json_schema.strict", "logitkit always enforces the schema")
        return {"json_schema": {"json_schema": dict(value["json_schema"]["schema"])}}
    conv.lose("response_format", f"not a response_format logitkit knows: {value!r}")
    return None


def _response_format(config: Any) -> dict[str, Any]:
    schema = dict(config.json_schema)
    if schema == ANY_OBJECT:
        return {"type": "json_object"}
    return {"type": "json_schema", "json_schema": {"name": "logitkit", "schema": schema, "strict": True}}


def to_openai(config: Any, registry: Registry | None = None) -> Conversion:
    """OpenAI chat-completions parameters from a logitkit config."""
    resolved, specs = run_order(config, registry)
    conv = Conversion({})
    params = conv.value
    for spec in specs:
        fields = changed_fields(spec.config)
        where = f"processors.{spec.name}"
        if spec.name == "json_schema":
            params["response_format"] = _response_format(spec.config)
            if not getattr(spec.config, "whitespace", False):
                conv.note(where, "OpenAI's JSON output may hold whitespace; logitkit's default is compact")
            continue
        if spec.name not in PROCESSOR_PARAMS:
            conv.lose(where, f"OpenAI has no {spec.name} parameter")
            continue
        value = getattr(spec.config, spec.name)
        if spec.name == "temperature" and value > 2:
            conv.lose(where, f"OpenAI accepts temperature 0..2 (got {value})")
            continue
        params[spec.name] = (
            {str(k): v for k, v in value.items()} if spec.name == "logit_bias" else value
        )
        for extra in sorted(set(fields) - {spec.name}):
            conv.lose(f"{where}.{extra}", f"OpenAI's {spec.name} has no {extra}")
    if resolved.order not in ("stage",) and [s.name for s in specs] != sorted_names(specs):
        conv.lose(
            "order", "OpenAI parameters have no order; the server applies its own fixed order"
        )
    selector = resolved.selector
    if selects_greedily(resolved):
        # Without this OpenAI would sample at temperature 1; at 0 it picks (near-)greedily.
        params["temperature"] = 0
    elif selector is not None:
        if selector.name == "multinomial":
            pass  # a plain categorical draw, as the server's
        elif selector.name == "sample":
            if selector.config.seed is not None:  # type: ignore[attr-defined]
                params["seed"] = selector.config.seed  # type: ignore[attr-defined]
        else:
            conv.lose(
                f"selector.{selector.name}",
                "OpenAI always samples (or picks greedily at temperature 0)",
            )
    gen = changed_fields(resolved.generation)
    for key, value in gen.items():
        if key == "max_new_tokens":
            params["max_completion_tokens"] = value
        elif key == "stop_strings":
            params["stop"] = value
        elif key == "num_return_sequences":
            params["n"] = value
        elif key == "seed" and "seed" not in params:
            params["seed"] = value
        else:
            conv.lose(f"generation.{key}", "OpenAI has no such parameter")
    if resolved.tokens.model_dump(exclude_none=True):
        conv.lose("tokens", "OpenAI takes special tokens from the model, not the request")
    return conv


def sorted_names(specs: list[Any]) -> list[str]:
    return [
        s.name for s in sorted(specs, key=lambda s: (int(s.cls.stage), s.cls.priority, s.position))
    ]
