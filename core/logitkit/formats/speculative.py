"""transformers' speculative-decoding fields -> logitkit's ``generation:`` search and ``search_options``.

Kept apart from the rest of the GenerationConfig translation so it can be
called from ``from_generation_config`` and ``logitkit convert`` alike.
transformers reads ``num_assistant_tokens``, its schedule and
``assistant_confidence_threshold`` from the **assistant's** generation
config, so those fields only pick options when the config also names a
drafter that uses them (``assistant_early_exit``); ``assisted`` and
``universal_assisted`` read them from the assistant model at ``generate()``
time, and need ``assistant_model=`` (and ``assistant_tokenizer=``) there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Every GenerationConfig field this module accounts for.
FIELDS = frozenset({
    "prompt_lookup_num_tokens", "max_matching_ngram_size", "assistant_early_exit", "num_assistant_tokens",
    "num_assistant_tokens_schedule", "assistant_confidence_threshold", "assistant_lookbehind",
    "target_lookbehind",
})  # fmt: skip
ASSISTANT_FIELDS = ("num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold")


def speculative_generation(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The ``generation:`` entries (``search``, ``search_options``) that ``fields`` ask for; {} for none."""
    given = {k: v for k, v in fields.items() if k in FIELDS and v is not None}
    if given.get("prompt_lookup_num_tokens"):
        options = {"num_tokens": int(given["prompt_lookup_num_tokens"])}
        if given.get("max_matching_ngram_size"):
            options["max_ngram"] = int(given["max_matching_ngram_size"])
        return {"search": "prompt_lookup", "search_options": options}
    if given.get("assistant_early_exit"):
        early: dict[str, Any] = {"assistant_early_exit": int(given["assistant_early_exit"])}
        early.update({k: given[k] for k in ASSISTANT_FIELDS if k in given})
        return {"search": "early_exit", "search_options": early}
    return {}


def consumed_fields(fields: Mapping[str, Any]) -> frozenset[str]:
    """The fields ``speculative_generation`` turns into options; the rest wait for an assistant model."""
    search = speculative_generation(fields).get("search")
    if search == "prompt_lookup":
        return frozenset({"prompt_lookup_num_tokens", "max_matching_ngram_size"})
    if search == "early_exit":
        return frozenset({"assistant_early_exit", *ASSISTANT_FIELDS})
    return frozenset()


def assisted_options(fields: Mapping[str, Any], universal: bool) -> dict[str, Any]:
    """``search_options`` for ``assisted`` / ``universal_assisted`` from a config's fields (the lookbehinds)."""
    if not universal:
        return {}
    return {k: int(fields[k]) for k in ("assistant_lookbehind", "target_lookbehind") if fields.get(k) is not None}
