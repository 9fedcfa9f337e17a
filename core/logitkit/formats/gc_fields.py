"""Where every field of transformers' ``GenerationConfig`` goes in a logitkit config.

One table, read by both ``Pipeline.from_generation_config`` and ``logitkit
convert`` (through ``logitkit.formats.hf_translation``), so the two can never
disagree about a field. Each field is carried (as a processor, a
``generation:`` setting, a token, or the selector and search), or it is named
in a warning (no effect on the tokens) or a refusal (the tokens would differ).
``tests/test_gc_fields.py`` checks that every field of the installed
transformers' ``GenerationConfig`` has a place here.
"""

from __future__ import annotations

from typing import Any, Final

from logitkit.formats.hf_search_modes import SEARCH_MODE_FIELDS
from logitkit.formats.speculative import FIELDS as SPECULATIVE_FIELD_NAMES
from logitkit.model_settings import ModelCallSettings

#: Fields that become logitkit processors (``hf_processors.logits_entries`` / ``sampling_entries``).
PROCESSOR_FIELDS: Final = frozenset({
    "guidance_scale", "sequence_bias", "encoder_repetition_penalty", "repetition_penalty",
    "no_repeat_ngram_size", "encoder_no_repeat_ngram_size", "bad_words_ids", "min_length", "min_new_tokens",
    "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty",
    "suppress_tokens", "begin_suppress_tokens", "forced_decoder_ids", "watermarking_config", "renormalize_logits",
    "temperature", "top_h", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff",
})  # fmt: skip
#: The warpers transformers applies only when ``do_sample`` is true.
SAMPLING_ONLY: Final = frozenset(
    {"temperature", "top_h", "top_k", "top_p", "min_p", "typical_p", "epsilon_cutoff", "eta_cutoff"}
)
#: Fields that become the ``generation:`` section under the same name.
GENERATION_FIELDS: Final = (
    "max_new_tokens", "max_length", "max_time", "stop_strings", "num_beams", "num_beam_groups",
    "diversity_penalty", "length_penalty", "early_stopping", "num_return_sequences", "token_healing",
    "output_scores", "output_logits",
)  # fmt: skip
#: Fields that pick transformers 4.x's decoding modes (``hf_search_modes``): a search strategy and its options.
SEARCH_FIELDS: Final = SEARCH_MODE_FIELDS
#: Speculative decoding fields (``formats.speculative``): prompt lookup and early exit pick a search;
#: the assisted ones are read from the assistant model's own generation config, as transformers does.
SPECULATIVE_FIELDS: Final = SPECULATIVE_FIELD_NAMES
#: Fields of the model calls (``logitkit.model_settings``): caches, compilation, recorded outputs;
#: ``max_cache_len`` becomes ``cache_config: {max_cache_len: N}``.
MODEL_CALL_FIELDS: Final = frozenset({*ModelCallSettings.model_fields, "max_cache_len"})
#: Fields that become the ``tokens:`` section; ``do_sample`` picks the selector and the search.
TOKEN_FIELDS: Final = frozenset({"eos_token_id", "bos_token_id", "pad_token_id", "decoder_start_token_id"})
CHOICE_FIELDS: Final = frozenset({"do_sample"})
#: Bookkeeping keys, not generation parameters.
METADATA: Final = frozenset({"transformers_version", "_from_model_config", "_commit_hash", "_original_object_hash"})

#: Fields whose value has no effect on the tokens logitkit produces: a warning names each one set.
NO_EFFECT: Final[dict[str, str]] = {
    "return_dict_in_generate": "logitkit.generate always returns a GenerationOutput (sequences, scores, logits)",
    "prefill_chunk_size": "logitkit prefills the prompt in one forward pass; the tokens are the same",
    "continuous_batching_config": "not read by generate(); logitkit's hosts drive a BatchState instead (docs/state.md)",
    "is_assistant": "marks a config as an assistant's; logitkit reads an assistant's settings from the model passed "
    "as generate(assistant_model=...)",
    "return_legacy_cache": "gone from transformers 5 (caches are Cache objects); logitkit returns no cache",
}

#: Fields logitkit does not carry, refused by name when set (the tokens would differ without them).
REFUSED: Final[dict[str, str]] = {
    "assistant_ensemble_weight": "static ensemble verification (accepting against w * p_target + (1 - w) * q_draft) "
    "is not implemented; logitkit's speculative strategies keep the target's distribution exactly",
    "speculation_type": "DFlash speculation is not implemented; use generation.search: prompt_lookup, assisted, "
    "early_exit or universal_assisted",
    "use_mtp": "multi-token-prediction heads are model-specific and not driven by logitkit; use a speculative "
    "search strategy instead",
    # Model forward keywords are arguments of a call, not settings of a config.
    "generation_kwargs": "pass model forward keywords to logitkit.generate(model, ids, ..., **kwargs), as to model.generate",
}

#: transformers 5's values for fields left unset (``GenerationConfig._get_default_generation_params``)
#: and the neutral value of the rest: a field holding its default, or None, is not "set".
DEFAULTS: Final[dict[str, Any]] = {
    "min_length": 0, "do_sample": False, "use_cache": True, "early_stopping": False, "num_beams": 1,
    "temperature": 1.0, "top_k": 50, "top_p": 1.0, "typical_p": 1.0, "repetition_penalty": 1.0,
    "length_penalty": 1.0, "no_repeat_ngram_size": 0, "encoder_no_repeat_ngram_size": 0,
    "num_return_sequences": 1, "output_scores": False, "output_logits": False, "return_dict_in_generate": False,
    "remove_invalid_values": False, "renormalize_logits": False, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0,
    "encoder_repetition_penalty": 1.0, "num_assistant_tokens": 20, "num_assistant_tokens_schedule": "constant",
    "assistant_confidence_threshold": 0.4, "assistant_lookbehind": 10, "target_lookbehind": 10,
    "num_beam_groups": 1, "diversity_penalty": 0.0, "output_attentions": False, "output_hidden_states": False,
    "token_healing": False, "low_memory": False, "disable_compile": False, "is_assistant": False,
    "use_mtp": False, "stop_strings": None, "max_matching_ngram_size": None,
}  # fmt: skip


def is_set(name: str, value: Any) -> bool:
    """True when ``value`` asks transformers for something beyond its default behaviour."""
    if value is None:
        return False
    if isinstance(value, (list, tuple, dict)) and not value and name not in TOKEN_FIELDS:
        return False
    try:
        return bool(value != DEFAULTS.get(name, None))
    except (RuntimeError, ValueError):  # a tensor (eos ids after transformers' preparation): set
        return True


def known_fields() -> frozenset[str]:
    """Every field this table places."""
    return frozenset(
        PROCESSOR_FIELDS | set(GENERATION_FIELDS) | TOKEN_FIELDS | CHOICE_FIELDS | METADATA | SEARCH_FIELDS
        | MODEL_CALL_FIELDS
        | set(NO_EFFECT) | set(REFUSED) | SPECULATIVE_FIELDS
    )  # fmt: skip
