"""A request's logitkit config: read from ``SamplingParams.extra_args["logitkit"]``, checked, built once.

A request names its config three ways: a config dict (offline ``SamplingParams``),
JSON text, or a preset name (``vllm_xargs`` online carries only str, int, float
or lists of them). Requests may name registered processors, selectors and
presets only: import paths are refused and a string is never read as a file.
The operator restricts what requests may use and sets a default (``ServerPolicy``).

vLLM chooses the token, so a config's ``selector:`` and ``generation:``
sections cannot run as written: ``greedy`` runs as a mask that keeps each
row's best token, ``sample`` (without a seed) is what vLLM's sampling does
anyway, and everything else is refused with the request field to use instead.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from logitkit import ConfigError, Pipeline
from logitkit.config import ResolvedConfig, resolve
from logitkit.errors import Problem
from logitkit.loading import read_config_file

#: The ``extra_args`` key a request's config travels under.
EXTRA_ARGS_KEY = "logitkit"
#: Where the problem lines say the config came from.
REQUEST_SOURCE = "extra_args.logitkit"

ALLOW_ENV = "LOGITKIT_VLLM_ALLOW"
DEFAULT_ENV = "LOGITKIT_VLLM_DEFAULT"
SETTINGS_ENV = "LOGITKIT_VLLM_SETTINGS"

#: What the rows' processors get from vLLM: the token history (the prompt stands in for encoder input).
#: A processor that needs anything else (a tokenizer, the model) is refused at admission,
#: rather than failing inside the engine's step.
PROVIDED_NEEDS = frozenset({"input_ids", "encoder_input_ids", "tokenizer"})  # the tokenizer: logitkit_vllm.tokenizer

#: What a request sets instead of each ``generation:`` field.
GENERATION_INSTEAD = {
    "max_new_tokens": "the request's max_tokens",
    "max_length": "the request's max_tokens",
    "stop_strings": "the request's stop",
    "num_return_sequences": "the request's n",
    "seed": "the request's seed",
    "output_scores": "the request's logprobs",
    "output_logits": "the request's logprobs",
}


@dataclass(frozen=True)
class ServerPolicy:
    """What the operator allows requests to use, and the config of requests that name none."""

    #: Processor, selector and preset names a request may use; None allows every registered one.
    allow: frozenset[str] | None = None
    #: The config of a request without one (operator-side: may be a dict, JSON text or a preset name).
    default: Any = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerPolicy:
        """``LOGITKIT_VLLM_SETTINGS`` (a server-side YAML/JSON/TOML file with ``allow`` and ``default``),
        then ``LOGITKIT_VLLM_ALLOW`` (comma-separated names) and ``LOGITKIT_VLLM_DEFAULT`` over it."""
        env = os.environ if environ is None else environ
        allow: frozenset[str] | None = None
        default: Any = None
        path = env.get(SETTINGS_ENV, "").strip()
        if path:
            data = read_config_file(Path(path))
            if not isinstance(data, dict) or set(data) - {"allow", "default"}:
                raise ConfigError([Problem(path, "", "the settings file holds a mapping with 'allow' and/or 'default' only")])
            if "allow" in data:
                if not isinstance(data["allow"], list) or not all(isinstance(n, str) for n in data["allow"]):
                    raise ConfigError([Problem(path, "allow", "must be a list of processor, selector or preset names")])
                allow = frozenset(data["allow"])
            default = data.get("default")
        names = env.get(ALLOW_ENV)
        if names is not None:
            allow = frozenset(n.strip() for n in names.split(",") if n.strip())
        if env.get(DEFAULT_ENV, "").strip():
            default = env[DEFAULT_ENV].strip()
        return cls(allow, default)


@dataclass(frozen=True)
class RequestPlan:
    """A checked config: the pipeline its rows run (no selector: vLLM chooses) and how its rows group."""

    #: Rows whose configs have the same key share one batch state and one call.
    key: str
    pipeline: Pipeline
    #: The config's selector is ``greedy``: keep only each row's best token.
    greedy: bool


def config_data(raw: Any, source: str = REQUEST_SOURCE) -> dict[str, Any] | list[Any]:
    """A request's config as data: a dict or list as given, JSON text parsed, any other string a preset name."""
    if isinstance(raw, (dict, list)):
        return raw
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith(("{", "[")):
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError([Problem(source, "", f"not valid JSON: {exc.msg} at character {exc.pos}")]) from None
            if not isinstance(data, (dict, list)):
                raise ConfigError([Problem(source, "", "JSON config must be an object or a list")])
            return data
        if text:
            return {"preset": text}
    raise ConfigError([Problem(source, "", f"must be a config dict, JSON text or a preset name, not {raw!r}")])


def _section_problems(resolved: ResolvedConfig, source: str) -> list[Problem]:
    """What vLLM's sampling cannot run: selectors other than greedy/sample, any generation setting."""
    problems = []
    selector = resolved.selector
    if selector is not None:
        if selector.name not in ("greedy", "sample"):
            problems.append(Problem(source, "selector", f"selector {selector.name!r} cannot run in vLLM: vLLM chooses the token (greedy and sample run)"))
        elif selector.name == "sample" and getattr(selector.config, "seed", None) is not None:
            problems.append(Problem(source, "selector.seed", "vLLM draws the token: use the request's seed"))
    for name in sorted(resolved.generation.model_fields_set):
        instead = GENERATION_INSTEAD.get(name)
        reason = f"set {instead} instead" if instead else "vLLM's engine has no such setting; leave it out"
        problems.append(Problem(source, f"generation.{name}", f"cannot run in vLLM: {reason}"))
    for spec in resolved.processors:
        if not spec.cls.follows_rows:
            problems.append(Problem(source, f"processors[{spec.position}]", f"{spec.name!r} cannot follow vLLM's rows (its state is per batch)"))
            continue
        for need in sorted(spec.cls.needs - PROVIDED_NEEDS):
            problems.append(Problem(source, f"processors[{spec.position}]", f"{spec.name!r} needs the {need}, which logitkit-vllm does not hand to processors"))
    return problems


def _allow_problems(resolved: ResolvedConfig, allow: frozenset[str], source: str) -> list[Problem]:
    used = [(f"processors[{s.position}]", s.name) for s in resolved.listed]
    if resolved.selector is not None:
        used.append(("selector", resolved.selector.name))
    if resolved.preset is not None:
        used.append(("preset", resolved.preset))
    return [Problem(source, path, f"{name!r} is not allowed on this server") for path, name in used if name not in allow]


class RequestConfigs:
    """Turns a request's raw config into a ``RequestPlan``, once per distinct value."""

    def __init__(self, policy: ServerPolicy | None = None) -> None:
        self.policy = policy if policy is not None else ServerPolicy.from_env()
        self._plans: dict[str, RequestPlan] = {}
        self._default = None if self.policy.default is None else self._build(self.policy.default, "logitkit default", operator=True)

    def plan(self, extra_args: Mapping[str, Any] | None) -> RequestPlan | None:
        """The plan for a request's ``extra_args`` (the default's when it names none); raises ``ConfigError``."""
        raw = extra_args.get(EXTRA_ARGS_KEY) if extra_args else None
        if raw is None:
            return self._default
        cache_key = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=repr)
        plan = self._plans.get(cache_key)
        if plan is None:
            plan = self._build(raw, REQUEST_SOURCE, operator=False)
            if len(self._plans) < 4096:  # bounded: a stream of distinct configs must not grow memory
                self._plans[cache_key] = plan
        return plan

    def _build(self, raw: Any, source: str, *, operator: bool) -> RequestPlan:
        data = config_data(raw, source)
        # Requests never import code; the operator's default follows LOGITKIT_ALLOW_IMPORT.
        resolved = resolve(data, source=source, allow_import=None if operator else False)
        problems = _section_problems(resolved, source)
        if not operator and self.policy.allow is not None:
            problems += _allow_problems(resolved, self.policy.allow, source)
        if problems:
            raise ConfigError(problems)
        pipeline = Pipeline.from_resolved(resolved).replace(selector=None)
        greedy = resolved.selector is not None and resolved.selector.name == "greedy"
        key = json.dumps(data, sort_keys=True, default=repr)
        return RequestPlan(key, pipeline, greedy)


@lru_cache(maxsize=1)
def server_configs() -> RequestConfigs:
    """The process's configs, from the environment (one per vLLM process: frontend and each worker)."""
    return RequestConfigs()
