"""Telling a file's parameter format from its keys, for ``validate`` and ``convert``.

A logitkit config has a few fixed sections; the other formats are flat
mappings whose keys give them away (``transformers_version`` or ``do_sample``,
``messages`` or ``max_completion_tokens``, ``samplers`` or ``repeat_penalty``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from logitkit.config import TOP_LEVEL_KEYS

#: Keys only (or mostly) one format uses; a key shared by several formats says nothing.
TELLING_KEYS: dict[str, frozenset[str]] = {
    "generation_config": frozenset({
        "transformers_version", "_from_model_config", "do_sample", "max_new_tokens", "max_length",
        "num_beams", "eos_token_id", "bos_token_id", "pad_token_id", "decoder_start_token_id",
        "repetition_penalty", "no_repeat_ngram_size", "suppress_tokens", "begin_suppress_tokens",
        "forced_decoder_ids", "forced_bos_token_id", "forced_eos_token_id", "typical_p", "min_new_tokens",
        "bad_words_ids", "sequence_bias", "guidance_scale", "use_cache", "num_return_sequences",
    }),
    "openai": frozenset({
        "model", "messages", "max_completion_tokens", "max_tokens", "frequency_penalty",
        "presence_penalty", "logit_bias", "n", "response_format", "stream", "tools", "logprobs",
        "top_logprobs", "user",
    }),
    "llama.cpp": frozenset({
        "samplers", "repeat_penalty", "repeat_last_n", "n_predict", "typ_p", "min_keep", "mirostat",
        "mirostat_tau", "mirostat_eta", "dry_multiplier", "dry_base", "xtc_probability",
        "xtc_threshold", "dynatemp_range", "top_n_sigma", "penalty_last_n", "temp",
    }),
}  # fmt: skip
#: Keys that name their format alone; otherwise two telling keys are needed.
DECISIVE_KEYS = frozenset({
    "transformers_version", "_from_model_config", "messages", "max_completion_tokens", "samplers", "n_predict",
})  # fmt: skip
DESCRIPTIONS = {
    "generation_config": "a transformers generation config",
    "openai": "an OpenAI request",
    "llama.cpp": "llama.cpp sampling parameters",
}
#: The ``--from`` spelling users type for each format.
CLI_NAMES = {"generation_config": "hf", "openai": "openai", "llama.cpp": "llama.cpp"}


def guess_format(data: Any) -> str | None:
    """The format whose telling keys ``data`` uses most, ``"logitkit"``, or ``None`` when unclear."""
    if isinstance(data, list):
        return "logitkit"
    if not isinstance(data, Mapping) or not data:
        return None
    keys = {str(k) for k in data}
    if keys <= set(TOP_LEVEL_KEYS):
        return "logitkit"
    scores = {fmt: len(keys & telling) for fmt, telling in TELLING_KEYS.items()}
    best = max(scores.values())
    winners = [fmt for fmt, score in scores.items() if score == best]
    if len(winners) > 1 or keys & set(TOP_LEVEL_KEYS):
        return None
    if best < 2 and not keys & DECISIVE_KEYS & TELLING_KEYS[winners[0]]:
        return None  # one stray key is a misplaced logitkit key more often than another format
    return winners[0]


def other_format_hint(data: Any, path: str) -> str | None:
    """One line saying which format a file that is not a logitkit config looks like, and what to run."""
    fmt = guess_format(data)
    if fmt is None or fmt == "logitkit":
        return None
    return (
        f"this looks like {DESCRIPTIONS[fmt]}, not a logitkit config; "
        f"convert it with: logitkit convert {path} --from {CLI_NAMES[fmt]} --to logitkit"
    )
