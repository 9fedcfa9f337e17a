"""GenerationConfig fields that pick one of transformers 4.x's decoding modes, as logitkit search strategies.

transformers 5 moved contrastive search, DoLa and constrained beam search to
Hub repositories; logitkit registers them as search strategies. This module
maps their fields onto ``generation.search`` and ``generation.search_options``
with 4.55.4's ``get_generation_mode`` rules, so that the translation of a
GenerationConfig (``Pipeline.from_generation_config``, ``logitkit convert``)
runs the mode transformers 4.x would. Group beam search needs no entry here:
``num_beam_groups`` is a generation setting already.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: GenerationConfig fields this module consumes.
SEARCH_MODE_FIELDS = frozenset({"penalty_alpha", "low_memory", "dola_layers", "force_words_ids", "constraints"})


class SearchModeError(ValueError):
    """A GenerationConfig that names a decoding mode in a way no strategy can run."""


def _constraint_entries(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``constraints`` (transformers objects or config-file mappings), then ``force_words_ids``, as 4.x orders them."""
    entries: list[dict[str, Any]] = []
    for item in data.get("constraints") or []:
        if isinstance(item, Mapping):
            entries.append(dict(item))
        elif hasattr(item, "trie"):  # transformers.DisjunctiveConstraint
            entries.append({"disjunctive": [list(ids) for ids in item.token_ids]})
        elif hasattr(item, "token_ids"):  # transformers.PhrasalConstraint
            entries.append({"phrasal": list(item.token_ids)})
        else:
            raise SearchModeError(f"constraints: cannot carry a {type(item).__name__}")
    return entries


def search_mode(data: Mapping[str, Any]) -> dict[str, Any]:
    """``generation:`` entries (``search``, ``search_options``) for the decoding mode 4.x picks; {} when none.

    ``data`` holds GenerationConfig fields (a dict, or ``GenerationConfig.to_dict()``).
    Contrastive search needs ``penalty_alpha > 0``, ``top_k > 1``, one beam and no
    sampling; DoLa extends greedy or sampled decoding; constrained beam search
    wins over everything, as in 4.x.
    """
    num_beams = int(data.get("num_beams") or 1)
    do_sample = bool(data.get("do_sample"))
    if data.get("constraints") is not None or data.get("force_words_ids") is not None:
        if num_beams <= 1 or do_sample or int(data.get("num_beam_groups") or 1) > 1:
            raise SearchModeError(
                "force_words_ids/constraints need num_beams > 1, do_sample false and num_beam_groups 1 "
                "(transformers 4.x's constrained beam search)"
            )
        options: dict[str, Any] = {}
        if data.get("force_words_ids") is not None:
            options["force_words_ids"] = data["force_words_ids"]
        entries = _constraint_entries(data)
        if entries:
            options["constraints"] = entries
        return {"search": "constrained_beam_search", "search_options": options}
    if data.get("dola_layers") is not None:
        if num_beams > 1:
            raise SearchModeError("dola_layers: DoLa runs with one beam (greedy or sampled), not num_beams > 1")
        return {"search": "dola", "search_options": {"dola_layers": data["dola_layers"]}}
    top_k, alpha = data.get("top_k"), data.get("penalty_alpha")
    if num_beams == 1 and not do_sample and top_k is not None and top_k > 1 and alpha is not None and alpha > 0:
        contrastive: dict[str, Any] = {"penalty_alpha": float(alpha), "top_k": int(top_k)}
        if data.get("low_memory"):
            contrastive["low_memory"] = True
        return {"search": "contrastive_search", "search_options": contrastive}
    return {}


def ignored_fields(data: Mapping[str, Any]) -> dict[str, str]:
    """This module's fields that are set but do not take effect, with the reason (for the loss report)."""
    try:
        mode = search_mode(data).get("search")
    except SearchModeError:
        mode = None  # reported by the caller as the refusal it is
    ignored: dict[str, str] = {}
    if data.get("penalty_alpha") not in (None, 0, 0.0) and mode != "contrastive_search":
        ignored["penalty_alpha"] = "contrastive search needs top_k > 1, one beam and do_sample false"
    if data.get("low_memory") and mode != "contrastive_search":
        ignored["low_memory"] = "only contrastive search has a low-memory mode"
    return ignored
