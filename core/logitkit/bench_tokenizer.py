"""A tokenizer as wide as the bench's vocabulary, for the ``json_schema`` case.

No 151,936-token tokenizer ships offline, and the constraint's cost depends on
the tokenizer's size (llguidance's bitmask, its unpacking, the masked write).
This one is the demo tokenizer with filler tokens appended: short strings of
letters and digits (some with the byte-level space), so the demo's own ids
keep their meaning and most filler tokens are allowed inside a JSON string,
as a real vocabulary's are.
"""

from __future__ import annotations

import json
import random
from functools import cache
from typing import Any

FILLER_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_\u0120"


@cache
def wide_tokenizer(vocab: int) -> Any:
    """The demo tokenizer (a ``tokenizers.Tokenizer``) grown to ``vocab`` tokens; itself when already that wide."""
    from tokenizers import Tokenizer

    from logitkit.demo import load_codec

    base = load_codec().tokenizer
    if base.get_vocab_size() >= vocab:
        return base
    spec = json.loads(base.to_str())
    tokens: dict[str, int] = dict(spec["model"]["vocab"])
    rng = random.Random(0)  # the same filler in every run
    while len(tokens) < vocab:
        tokens.setdefault("".join(rng.choices(FILLER_ALPHABET, k=rng.randint(2, 9))), len(tokens))
    spec["model"]["vocab"] = tokens
    return Tokenizer.from_str(json.dumps(spec))
