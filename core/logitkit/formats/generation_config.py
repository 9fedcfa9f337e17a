"""A transformers ``generation_config.json`` <-> logitkit config.

Reading reuses ``logitkit.formats.hf_processors.to_config`` (the same
translation ``Pipeline.from_generation_config`` runs), then reports every
field of the file it did not carry over. Writing maps processors back to
GenerationConfig fields; transformers' order is fixed, so a config whose run
order differs from it reports the order as lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logitkit.formats.common import Conversion, changed_fields, run_order
from logitkit.formats.hf_search_modes import (
    SEARCH_MODE_FIELDS,
    SearchModeError,
    ignored_fields,
    search_mode,
)
from logitkit.registry import Registry
from logitkit.settings import GenerationSettings

#: logitkit processor -> {logitkit field: GenerationConfig field}.
TO_GC: dict[str, dict[str, str]] = {
    **{name: {name: name} for name in (
        "temperature", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff", "top_h",
        "guidance_scale", "sequence_bias", "bad_words_ids", "min_length", "min_new_tokens",
        "forced_bos_token_id", "suppress_tokens", "begin_suppress_tokens",
    )},
    "repetition_penalty": {"penalty": "repetition_penalty"},
    "encoder_repetition_penalty": {"penalty": "encoder_repetition_penalty"},
    "no_repeat_ngram_size": {"ngram_size": "no_repeat_ngram_size"},
    "encoder_no_repeat_ngram_size": {"ngram_size": "encoder_no_repeat_ngram_size"},
    "forced_eos_token_id": {"forced_eos_token_id": "forced_eos_token_id"},
    "remove_invalid_values": {},
    "renormalize_logits": {},
    "exponential_decay_length_penalty": {},
    "forced_decoder_ids": {},
}  # fmt: skip
#: Fields transformers derives itself rather than reading from the file.
DERIVED = {"min_tokens_to_keep", "begin_step", "max_length", "max_new_tokens"}
#: GenerationConfig fields that become logitkit's ``generation:`` section.
GENERATION_FIELDS = set(GenerationSettings.model_fields) - {"seed", "token_healing", "search_options"}
#: Fields read by the logits translation, the tokens section or the selector.
CONSUMED = {
    *(gc for mapping in TO_GC.values() for gc in mapping.values()), "do_sample", "remove_invalid_values",
    "renormalize_logits", "exponential_decay_length_penalty", "watermarking_config", "forced_decoder_ids",
    "eos_token_id", "bos_token_id", "pad_token_id", "decoder_start_token_id",
}  # fmt: skip
#: Bookkeeping keys, not generation parameters.
METADATA = {"transformers_version", "_from_model_config"}
SAMPLING_ONLY = {
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "typical_p",
    "epsilon_cutoff",
    "eta_cutoff",
    "top_h",
}


def from_generation_config(data: Mapping[str, Any]) -> Conversion:
    """A logitkit config dict from the contents of a ``generation_config.json``."""
    from logitkit.formats.hf_processors import load_generation_config, to_config

    gc = load_generation_config({k: v for k, v in data.items() if k not in SEARCH_MODE_FIELDS})
    conv = Conversion(to_config(gc))
    generation = {
        key: data[key] for key in data if key in GENERATION_FIELDS and data[key] is not None
    }
    # 4.x's decoding modes (contrastive, DoLa, constrained beam) become registered search strategies.
    try:
        mode = search_mode(data)
    except SearchModeError as exc:
        mode = {}
        conv.lose("search mode", str(exc))
    generation.update(mode)
    if generation:
        conv.value["generation"] = generation
    ignored = ignored_fields(data)
    for key, value in data.items():
        if key in METADATA or key in GENERATION_FIELDS or value is None:
            continue
        if key in SEARCH_MODE_FIELDS:
            if key in ignored:
                conv.lose(key, ignored[key])
            continue
        if key == "top_k" and mode.get("search") == "contrastive_search":
            continue  # contrastive search's candidate count, carried in search_options
        if key in SAMPLING_ONLY and not data.get("do_sample", False):
            conv.lose(key, "do_sample is false, so transformers never applies it")
        elif key not in CONSUMED:
            conv.lose(key, "no logitkit equivalent in the logits pipeline")
    return conv


def to_generation_config(config: Any, registry: Registry | None = None) -> Conversion:
    """The fields of a ``generation_config.json`` from a logitkit config."""
    from logitkit.formats.hf_processors import load_generation_config, to_config

    resolved, specs = run_order(config, registry)
    conv = Conversion({})
    out = conv.value
    for spec in specs:
        where = f"processors.{spec.name}"
        mapping = TO_GC.get(spec.name)
        if mapping is None:
            conv.lose(where, "transformers' GenerationConfig has no such parameter")
            continue
        fields = spec.config.model_dump()
        if spec.name in ("remove_invalid_values", "renormalize_logits"):
            out[spec.name] = True
        elif spec.name == "exponential_decay_length_penalty":
            out[spec.name] = [fields["start_index"], fields["decay_factor"]]
        elif spec.name == "forced_decoder_ids":
            out[spec.name] = [[pos, tok] for pos, tok in sorted(fields["forced_decoder_ids"].items())]
            conv.note(where, "transformers 5 ignores forced_decoder_ids (Whisper takes task and language instead); 4.x applies it")
        for key, target in mapping.items():
            out[target] = fields[key]
        for key in sorted(
            set(changed_fields(spec.config))
            - set(mapping)
            - {"start_index", "decay_factor", "forced_decoder_ids"}
        ):
            if key == "min_tokens_to_keep" and fields[key] == 1:
                continue
            reason = (
                "transformers derives it (from num_beams)"
                if key in DERIVED
                else "GenerationConfig has no such field"
            )
            conv.lose(f"{where}.{key}", reason)
    selector = resolved.selector
    sampling = any(s.name in SAMPLING_ONLY for s in specs)
    if selector is not None and selector.name not in ("sample", "greedy"):
        conv.lose(f"selector.{selector.name}", "transformers only samples or picks greedily")
    do_sample = (
        sampling
        if selector is None or selector.name not in ("sample", "greedy")
        else selector.name == "sample"
    )
    if sampling and not do_sample:
        conv.lose("selector", "greedy selection: transformers would then skip the sampling warpers")
    out["do_sample"] = do_sample
    if selector is not None and getattr(selector.config, "seed", None) is not None:
        conv.lose(
            "selector.seed",
            "transformers takes its seed from torch.manual_seed, not the generation config",
        )
    tokens = resolved.tokens
    for key, target in (("eos", "eos_token_id"), ("bos", "bos_token_id"), ("pad", "pad_token_id"),
                        ("decoder_start", "decoder_start_token_id")):  # fmt: skip
        value = getattr(tokens, key)
        if value is not None:
            out[target] = value[0] if key == "eos" and len(value) == 1 else value
    if tokens.vocab_size is not None:
        conv.lose(
            "tokens.vocab_size", "transformers reads the vocabulary size from the model config"
        )
    for key, value in changed_fields(resolved.generation).items():
        if key in GENERATION_FIELDS:
            out[key] = value
        else:
            conv.lose(f"generation.{key}", "GenerationConfig has no such field")
    # transformers' order is fixed: rebuild what it would run and compare.
    hf_names = [e["name"] for e in to_config(load_generation_config(out))["processors"]]
    ours = [s.name for s in specs if s.name in TO_GC]
    if hf_names != ours:
        conv.lose("order", f"transformers would run {hf_names}, not {ours}")
    return conv
