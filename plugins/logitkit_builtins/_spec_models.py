"""Models fed several tokens at once, with a cache that can be cut back: what speculative decoding needs.

``ChunkedLM.extend(sequences, mask)`` feeds the columns of ``sequences`` not
yet in the cache and returns their logits (``[rows, new, vocab]``, float32);
``crop(length)`` forgets the cache past ``length`` columns (rejected drafts).
A plain callable ``fn(input_ids, attention_mask) -> logits`` has no cache: it
is called on the whole sequence.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch


def cache_keyword(model: Any) -> str:
    # transformers 5 renamed ``past_key_values`` to ``cache``; accept both.
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "cache"
    return "cache" if "cache" in params else "past_key_values"


def crop_cache(cache: Any, keep: int) -> None:
    """Cut ``cache`` back to its first ``keep`` positions."""
    extra = int(cache.get_seq_length()) - keep
    if extra <= 0:
        return
    try:
        cache.crop(-extra)  # transformers 5: the number of positions to drop, negated
    except ValueError:
        cache.crop(keep)  # transformers 4: the length to keep


def is_transformers_lm(model: Any) -> bool:
    config = getattr(model, "config", None)
    return config is not None and hasattr(model, "forward") and hasattr(config, "is_encoder_decoder")


@contextmanager
def first_layers(model: Any, layers: int | None) -> Iterator[None]:
    """Run ``model`` on its first ``layers`` decoder layers only (then its final norm and lm_head).

    transformers' decoder models loop over ``layers[: config.num_hidden_layers]``;
    its own early-exit drafter sets that value the same way for the draft pass.
    """
    if layers is None:
        yield
        return
    base = getattr(model, getattr(model, "base_model_prefix", "model"), model)
    config = base.config
    total = config.num_hidden_layers
    config.num_hidden_layers = layers
    try:
        yield
    finally:
        config.num_hidden_layers = total


class ChunkedLM:
    """A decoder-only model over left-padded rows that all hold the same number of columns."""

    def __init__(
        self, model: Any, *, layers: int | None = None, cache: Any = None, length: int = 0, padded: bool = True
    ) -> None:
        self.model = model
        self.layers = layers
        self.transformers = is_transformers_lm(model)
        if self.transformers and model.config.is_encoder_decoder:
            raise ValueError("speculative decoding runs decoder-only models, not encoder-decoders")
        self.keyword = cache_keyword(model) if self.transformers else ""
        self.cache = cache
        #: Columns of the sequences already in the cache.
        self.length = length if (cache is not None or not self.transformers) else 0
        self.padded = padded

    def extend(self, sequences: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Logits after each column of ``sequences`` past ``self.length``: ``[rows, new, vocab]``."""
        new = int(sequences.shape[-1]) - self.length
        if new <= 0:
            raise ValueError("extend needs at least one new column")
        if not self.transformers:
            logits = self._call(sequences, attention_mask, new)
        else:
            with first_layers(self.model, self.layers):
                out = self.model(
                    input_ids=sequences[:, self.length :],
                    attention_mask=attention_mask if self.padded else None,
                    use_cache=True,
                    return_dict=True,
                    **({self.keyword: self.cache} if self.cache is not None else {}),
                )
            self.cache = out[self.keyword] if self.keyword in out else getattr(out, self.keyword, None)
            logits = out.logits
        self.length = int(sequences.shape[-1])
        return logits.to(dtype=torch.float32, copy=True)

    def _call(self, sequences: torch.Tensor, attention_mask: torch.Tensor, new: int) -> torch.Tensor:
        logits = self.model(sequences, attention_mask)
        logits = getattr(logits, "logits", logits)
        if logits.dim() == 3:
            return logits[:, -new:]
        # A callable that returns the last position only: call it once per new column.
        width = int(sequences.shape[-1])
        steps = [self.model(sequences[:, :end], attention_mask[:, :end]) for end in range(width - new + 1, width)]
        return torch.stack([getattr(s, "logits", s) for s in steps] + [logits], dim=1)

    def crop(self, length: int) -> None:
        if length >= self.length:
            return
        if self.cache is not None:
            crop_cache(self.cache, length)
        self.length = length
