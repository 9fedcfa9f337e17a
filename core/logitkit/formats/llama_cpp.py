"""llama.cpp's ``--samplers`` chain and sampling parameters <-> logitkit config.

The chain is a ``;``-separated list of sampler names (``penalties;dry;top_k;...``)
or the one-letter form of ``--sampling-seq`` (``edskypmxt``), after
``common/sampling.cpp``. Parameters use llama-server's JSON names
(``temperature``, ``top_k``, ``repeat_penalty``, ``dry_multiplier``, ...); the
CLI spellings (``--temp``, ``--top-k``, ``--mirostat-lr``) are accepted too.
A sampler in the chain whose parameters are not given uses llama.cpp's default,
as llama.cpp does. Samplers that transformers lacks (DRY, XTC, top-n-sigma,
dynamic temperature, mirostat, the OpenAI penalties) resolve through the
registry; the built-ins' ``engines`` family provides them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from logitkit.errors import ConfigError, Problem
from logitkit.formats.common import Conversion, changed_fields, run_order, selects_greedily
from logitkit.registry import Registry

#: llama.cpp's default chain (common_params_sampling::samplers).
DEFAULT_SAMPLERS = (
    "penalties",
    "dry",
    "top_n_sigma",
    "top_k",
    "typ_p",
    "top_p",
    "min_p",
    "xtc",
    "temperature",
)
#: common_sampler_type_to_chr.
LETTERS = {
    "d": "dry", "k": "top_k", "y": "typ_p", "p": "top_p", "s": "top_n_sigma", "m": "min_p",
    "t": "temperature", "x": "xtc", "i": "infill", "e": "penalties", "a": "adaptive_p",
}  # fmt: skip
#: The names common_sampler_types_from_names accepts, canonicalized.
NAMES = {
    **{name: name for name in LETTERS.values()},
    "top-k": "top_k", "top-p": "top_p", "nucleus": "top_p", "min-p": "min_p", "temp": "temperature",
    "typ-p": "typ_p", "typ": "typ_p", "typical_p": "typ_p", "typical-p": "typ_p", "typical": "typ_p",
    "top-n-sigma": "top_n_sigma",
}  # fmt: skip
#: llama.cpp's defaults (common/common.h, common_params_sampling).
DEFAULTS: dict[str, Any] = {
    "temperature": 0.8, "top_k": 40, "top_p": 0.95, "min_p": 0.05, "typ_p": 1.0, "min_keep": 0,
    "repeat_last_n": 64, "repeat_penalty": 1.0, "frequency_penalty": 0.0, "presence_penalty": 0.0,
    "dry_multiplier": 0.0, "dry_base": 1.75, "dry_allowed_length": 2, "dry_penalty_last_n": -1,
    "dry_sequence_breakers": ["\n", ":", '"', "*"], "xtc_probability": 0.0, "xtc_threshold": 0.1,
    "top_n_sigma": -1.0, "dynatemp_range": 0.0, "dynatemp_exponent": 1.0,
    "mirostat": 0, "mirostat_tau": 5.0, "mirostat_eta": 0.1,
}  # fmt: skip
#: CLI and older spellings of the parameters above.
PARAM_ALIASES = {
    "temp": "temperature", "typical_p": "typ_p", "typical": "typ_p", "penalty_repeat": "repeat_penalty",
    "penalty_last_n": "repeat_last_n", "penalty_freq": "frequency_penalty", "penalty_present": "presence_penalty",
    "mirostat_lr": "mirostat_eta", "mirostat_ent": "mirostat_tau", "dynatemp_exp": "dynatemp_exponent",
    "max_tokens": "n_predict", "predict": "n_predict", "dry_sequence_breaker": "dry_sequence_breakers",
}  # fmt: skip
EXTRA_PARAMS = ("seed", "n_predict", "stop", "logit_bias")


def parse_samplers(samplers: str | Sequence[str] | None) -> list[str]:
    """Canonical sampler names from a ``;``-separated string, a letter string or a list."""
    if samplers is None:
        return list(DEFAULT_SAMPLERS)
    if isinstance(samplers, str):
        text = samplers.strip()
        if not text:
            return []  # an empty chain: llama.cpp only samples (dist)
        if ";" in text or text.lower() in NAMES:
            parts = [p.strip() for p in text.split(";") if p.strip()]
        elif text and all(ch in LETTERS for ch in text):
            parts = [LETTERS[ch] for ch in text]
        else:
            parts = [text]
    else:
        parts = [str(p).strip() for p in samplers]
    unknown = [p for p in parts if p.lower() not in NAMES]
    if unknown:
        known = ", ".join(sorted(set(NAMES.values())))
        raise ConfigError(
            [
                Problem(
                    "<llama.cpp>", "samplers", f"unknown llama.cpp sampler {u!r}; known: {known}"
                )
                for u in unknown
            ]
        )
    return [NAMES[p.lower()] for p in parts]


def normalize_params(params: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in params.items():
        name = key.lstrip("-").replace("-", "_")
        out[PARAM_ALIASES.get(name, name)] = value
    return out


def from_llama_cpp(samplers: str | Sequence[str] | None = None, **params: Any) -> Conversion:
    """A logitkit config dict from a llama.cpp sampler chain and its parameters."""
    conv = Conversion({})
    chain = parse_samplers(samplers)
    given = normalize_params(params)
    for key in given:
        if key not in DEFAULTS and key not in EXTRA_PARAMS:
            conv.lose(key, "not a llama.cpp sampling parameter logitkit knows")
    p = {**DEFAULTS, **{k: v for k, v in given.items() if k in DEFAULTS}}
    keep = {"min_tokens_to_keep": p["min_keep"]} if p["min_keep"] > 1 else {}
    processors: list[Any] = []
    if given.get("logit_bias"):
        processors.append({"logit_bias": _logit_bias(given["logit_bias"])})
    if p["mirostat"] in (1, 2):
        # llama.cpp builds temperature -> mirostat and nothing else when mirostat is on.
        if "samplers" in params or samplers is not None:
            conv.lose("samplers", "llama.cpp ignores the sampler chain when mirostat is on")
        if p["temperature"] != 1.0:
            processors.append({"temperature": max(0.0, p["temperature"])})
        name = "mirostat" if p["mirostat"] == 1 else "mirostat_v2"
        conv.value["selector"] = {"name": name, "tau": p["mirostat_tau"], "eta": p["mirostat_eta"]}
        if "seed" in given:
            conv.value["selector"]["seed"] = given["seed"]
    else:
        for sampler in chain:
            processors.extend(_entries(sampler, p, keep, conv))
        if "temperature" in chain and p["temperature"] <= 0 and p["dynatemp_range"] <= 0:
            # llama.cpp keeps only the top token at temperature <= 0: greedy, and a seed changes nothing.
            conv.value["selector"] = "greedy"
            if "seed" in given:
                conv.lose("seed", "temperature <= 0 picks greedily, so the seed has no effect")
                given.pop("seed")
        else:
            # The chain always ends in llama.cpp's dist sampler, whatever samplers precede it.
            conv.value["selector"] = {"name": "sample", **({"seed": given["seed"]} if "seed" in given else {})}
    if "seed" in given:
        conv.note(
            "seed",
            "logitkit's sampler draws different random numbers than llama.cpp's for the same seed",
        )
    conv.value["order"] = "listed"
    conv.value["processors"] = processors
    generation: dict[str, Any] = {}
    if isinstance(given.get("n_predict"), int) and given["n_predict"] > 0:
        generation["max_new_tokens"] = given["n_predict"]
    if given.get("stop"):
        generation["stop_strings"] = (
            [given["stop"]] if isinstance(given["stop"], str) else list(given["stop"])
        )
    if generation:
        conv.value["generation"] = generation
    return conv


def _logit_bias(value: Any) -> dict[int, float]:
    if isinstance(value, Mapping):
        return {int(k): float(v) for k, v in value.items()}
    return {int(pair[0]): float(pair[1]) for pair in value}


def _entries(
    sampler: str, p: dict[str, Any], keep: dict[str, Any], conv: Conversion
) -> Iterable[Any]:
    if sampler == "penalties":
        if p["repeat_last_n"] == 0:
            return
        window = (
            "the whole context"
            if p["repeat_last_n"] < 0
            else f"the last {p['repeat_last_n']} tokens"
        )
        if p["repeat_penalty"] != 1.0:
            if p["repeat_last_n"] > 0:
                conv.note(
                    "repeat_penalty",
                    f"llama.cpp penalizes {window}; logitkit's repetition_penalty the whole sequence",
                )
            yield {"repetition_penalty": p["repeat_penalty"]}
        for name in ("frequency_penalty", "presence_penalty"):
            if p[name] != 0:
                conv.note(
                    name,
                    f"llama.cpp counts {window}, prompt included; logitkit counts generated tokens only",
                )
                yield {name: p[name]}
    elif sampler == "dry":
        if p["dry_multiplier"] > 0 and p["dry_penalty_last_n"] != 0:
            last_n = p["dry_penalty_last_n"]
            yield {
                "name": "dry",
                "multiplier": p["dry_multiplier"],
                "base": p["dry_base"],
                "allowed_length": p["dry_allowed_length"],
                "penalty_last_n": 0 if last_n < 0 else last_n,
                "sequence_breakers": list(p["dry_sequence_breakers"]),
            }
    elif sampler == "top_n_sigma":
        if p["top_n_sigma"] > 0:
            yield {"name": "top_n_sigma", "top_n_sigma": p["top_n_sigma"], **keep}
    elif sampler == "top_k":
        if p["top_k"] > 0:
            yield {"name": "top_k", "top_k": p["top_k"], **keep} if keep else {"top_k": p["top_k"]}
    elif sampler == "typ_p":
        if p["typ_p"] < 1.0:
            yield {"name": "typical_p", "typical_p": p["typ_p"], **keep}
    elif sampler == "top_p":
        if p["top_p"] < 1.0:
            yield {"name": "top_p", "top_p": p["top_p"], **keep} if keep else {"top_p": p["top_p"]}
    elif sampler == "min_p":
        if p["min_p"] > 0:
            yield {"name": "min_p", "min_p": p["min_p"], **keep} if keep else {"min_p": p["min_p"]}
    elif sampler == "xtc":
        if p["xtc_probability"] > 0 and p["xtc_threshold"] <= 0.5:
            yield {
                "name": "xtc",
                "probability": p["xtc_probability"],
                "threshold": p["xtc_threshold"],
                **keep,
            }
    elif sampler == "temperature":
        if p["dynatemp_range"] > 0:
            yield {"name": "dynamic_temperature", "temperature": p["temperature"], "range": p["dynatemp_range"],
                   "exponent": p["dynatemp_exponent"]}  # fmt: skip
        elif 0 < p["temperature"] != 1.0:
            yield {"temperature": p["temperature"]}
    else:
        conv.lose(sampler, "logitkit has no equivalent of this llama.cpp sampler")


#: logitkit processor -> (llama.cpp sampler, {logitkit field: llama.cpp parameter}).
TO_LLAMA = {
    "temperature": ("temperature", {"temperature": "temperature"}),
    "dynamic_temperature": ("temperature", {"temperature": "temperature", "range": "dynatemp_range", "exponent": "dynatemp_exponent"}),
    "top_k": ("top_k", {"top_k": "top_k", "min_tokens_to_keep": "min_keep"}),
    "top_p": ("top_p", {"top_p": "top_p", "min_tokens_to_keep": "min_keep"}),
    "min_p": ("min_p", {"min_p": "min_p", "min_tokens_to_keep": "min_keep"}),
    "typical_p": ("typ_p", {"typical_p": "typical_p", "min_tokens_to_keep": "min_keep"}),
    "top_n_sigma": ("top_n_sigma", {"top_n_sigma": "top_n_sigma", "min_tokens_to_keep": "min_keep"}),
    "xtc": ("xtc", {"probability": "xtc_probability", "threshold": "xtc_threshold", "min_tokens_to_keep": "min_keep"}),
    "dry": ("dry", {"multiplier": "dry_multiplier", "base": "dry_base", "allowed_length": "dry_allowed_length",
                    "penalty_last_n": "dry_penalty_last_n", "sequence_breakers": "dry_sequence_breakers"}),
    "repetition_penalty": ("penalties", {"penalty": "repeat_penalty"}),
    "frequency_penalty": ("penalties", {"frequency_penalty": "frequency_penalty"}),
    "presence_penalty": ("penalties", {"presence_penalty": "presence_penalty"}),
}  # fmt: skip


def to_llama_cpp(config: Any, registry: Registry | None = None) -> Conversion:
    """llama.cpp's ``samplers`` chain and parameters (llama-server JSON names) from a logitkit config."""
    resolved, specs = run_order(config, registry)
    conv = Conversion({})
    params: dict[str, Any] = {}
    chain: list[str] = []
    selector = resolved.selector
    mirostat = selector is not None and selector.name in ("mirostat", "mirostat_v2")
    for spec in specs:
        where = f"processors.{spec.name}"
        if spec.name == "logit_bias":
            params["logit_bias"] = {str(k): v for k, v in spec.config.logit_bias.items()}  # type: ignore[attr-defined]
            if spec is not specs[0]:
                conv.note(where, "llama.cpp applies logit_bias before every other sampler")
            continue
        if spec.name not in TO_LLAMA:
            conv.lose(where, "llama.cpp has no equivalent sampler")
            continue
        sampler, mapping = TO_LLAMA[spec.name]
        if mirostat and sampler != "temperature":
            conv.lose(where, "llama.cpp ignores every sampler but temperature when mirostat is on")
            continue
        fields = spec.config.model_dump()
        changed = changed_fields(spec.config)
        for key in sorted(set(changed) - set(mapping)):
            conv.lose(f"{where}.{key}", f"llama.cpp's {sampler} has no such parameter")
        for key, target in mapping.items():
            value = fields[key]
            if key == "min_tokens_to_keep":
                if value > 1:
                    params["min_keep"] = max(value, params.get("min_keep", 0))
                continue
            if spec.name == "dry" and key == "penalty_last_n" and value == 0:
                value = -1  # logitkit's "whole sequence" is llama.cpp's -1
            params[target] = value
        if spec.name == "dry" and spec.config.sequence_breaker_ids:  # type: ignore[attr-defined]
            conv.lose(
                f"{where}.sequence_breaker_ids", "llama.cpp takes sequence breakers as strings only"
            )
        if spec.name == "repetition_penalty":
            params["repeat_last_n"] = -1  # the whole context, like logitkit's
        if spec.name in ("frequency_penalty", "presence_penalty"):
            conv.note(
                where,
                "llama.cpp counts the last repeat_last_n tokens, prompt included; logitkit only generated ones",
            )
        if sampler not in chain:
            chain.append(sampler)
    if selector is not None:
        seed = getattr(selector.config, "seed", None)
        if mirostat:
            params["mirostat"] = 1 if selector.name == "mirostat" else 2
            params["mirostat_tau"] = selector.config.tau  # type: ignore[attr-defined]
            params["mirostat_eta"] = selector.config.eta  # type: ignore[attr-defined]
            if selector.name == "mirostat" and selector.config.m != 100:  # type: ignore[attr-defined]
                conv.lose("selector.m", "llama.cpp fixes mirostat's m at 100")
        elif selector.name not in ("sample", "multinomial", "greedy"):
            conv.lose(f"selector.{selector.name}", "llama.cpp has no equivalent selector")
        if seed is not None:
            params["seed"] = seed
    if selects_greedily(resolved):
        # Without this llama.cpp would sample at temperature 1 (its chain always ends in dist).
        if "temperature" not in chain:
            chain.append("temperature")
        params["temperature"] = 0.0  # llama.cpp keeps only the top token at temperature <= 0
    for key in resolved.tokens.model_dump(exclude_none=True):
        conv.lose(f"tokens.{key}", "llama.cpp takes special tokens and the vocabulary from the model file")
    gen = changed_fields(resolved.generation)
    for key, value in gen.items():
        if key == "max_new_tokens":
            params["n_predict"] = value
        elif key == "stop_strings":
            params["stop"] = value
        elif key == "seed" and "seed" not in params:
            params["seed"] = value
        else:
            conv.lose(f"generation.{key}", "llama.cpp has no such sampling parameter")
    conv.value = {"samplers": ";".join(chain), **params}
    return conv
