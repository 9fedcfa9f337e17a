"""The model's own generation config under a passed one, as transformers 5's ``generate`` merges them.

``model.generate(ids, generation_config=gc)`` first fills every field ``gc``
leaves unset (None) from ``model.generation_config``, so a model shipped with
``do_sample: true, temperature: 0.6`` samples even when ``gc`` only sets
``max_new_tokens``. ``logitkit.generate(model, ids, generation_config=gc)``
does the same before translating.
"""

from __future__ import annotations

import copy
from typing import Any


def with_model_defaults(gc: Any, model: Any) -> Any:
    """``gc`` with its unset fields filled from ``model.generation_config`` (``gc`` itself is not changed)."""
    own = getattr(model, "generation_config", None)
    if own is None or not hasattr(own, "to_dict") or own is gc:
        return gc
    merged = copy.deepcopy(gc)
    try:
        merged.update(**own.to_dict(), defaults_only=True, allow_custom_entries=True)
    except TypeError:  # transformers 4.x has no defaults_only, and its generate() does not merge either
        return gc
    return merged
