"""A transformers ``generation_config.json`` <-> logitkit config.

Reading runs ``logitkit.formats.hf_translation.translate`` (the same
translation ``Pipeline.from_generation_config`` runs), which reports every
field of the file it did not carry over. Writing maps processors back to
GenerationConfig fields; transformers' order is fixed, so a config whose run
order differs from it reports the order as lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logitkit.formats.common import Conversion, changed_fields, run_order
from logitkit.formats.gc_fields import SAMPLING_ONLY
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
GENERATION_FIELDS = set(GenerationSettings.model_fields) - {"seed", "search", "search_options"}
#: Selectors transformers' ``do_sample`` stands for: multinomial is its own draw, sample is logitkit's Gumbel draw.
SAMPLING_SELECTORS = ("multinomial", "sample")


def from_generation_config(data: Mapping[str, Any]) -> Conversion:
    """A logitkit config dict from the contents of a ``generation_config.json``.

    The same translation as ``Pipeline.from_generation_config``
    (``logitkit.formats.hf_translation``); every field it does not carry is reported.
    """
    from logitkit.formats.gc_fields import SEARCH_FIELDS
    from logitkit.formats.hf_processors import load_generation_config
    from logitkit.formats.hf_translation import translate

    # Constraints written as mappings are not GenerationConfig values: they travel beside it.
    search = {key: value for key, value in data.items() if key in SEARCH_FIELDS}
    rest = {key: value for key, value in data.items() if key not in SEARCH_FIELDS}
    return translate(load_generation_config(rest), search_fields=search).conversion


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
    choices = (*SAMPLING_SELECTORS, "greedy")
    if selector is not None and selector.name not in choices:
        conv.lose(f"selector.{selector.name}", "transformers only samples or picks greedily")
    do_sample = (
        sampling
        if selector is None or selector.name not in choices
        else selector.name in SAMPLING_SELECTORS
    )
    if sampling and not do_sample:
        conv.lose("selector", "greedy selection: transformers would then skip the sampling warpers")
    out["do_sample"] = do_sample
    if do_sample and "top_k" not in out:
        out["top_k"] = 0  # else transformers adds its implicit top_k=50
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
        elif key == "search" and value == "beam_sample":
            out["do_sample"] = True  # transformers samples the beams when do_sample is set
        else:
            conv.lose(f"generation.{key}", "GenerationConfig has no such field")
    # transformers' order is fixed: rebuild what it would run and compare.
    hf_names = [e["name"] for e in to_config(load_generation_config(out))["processors"]]
    ours = [s.name for s in specs if s.name in TO_GC]
    if hf_names != ours:
        conv.lose("order", f"transformers would run {hf_names}, not {ours}")
    return conv
