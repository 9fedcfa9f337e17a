"""Adapters that give the decoding loops one interface over any torch model.

* ``CausalLMRunner``: a transformers decoder-only model, with its KV cache.
* ``EncoderDecoderRunner``: a transformers encoder-decoder (T5, BART, ...):
  the encoder runs once, the decoder reuses its cache.
* ``CallableRunner``: any ``fn(input_ids, attention_mask) -> logits``; the whole
  sequence is passed at every step (no cache).

``start`` returns the logits for the first new token; ``advance`` gets the
sequences with the newest token appended and returns the next logits;
``reorder`` follows beam search's choice of which rows continue.
Logits come back as float32 ``[rows, vocab]``, a copy (as transformers does).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch


def _last_logits(logits: torch.Tensor) -> torch.Tensor:
    last = logits[:, -1] if logits.dim() == 3 else logits
    return last.to(dtype=torch.float32, copy=True)


def _cache_keyword(model: Any) -> str:
    # transformers 5 renamed ``past_key_values`` to ``cache``; accept both.
    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "cache"
    return "cache" if "cache" in params else "past_key_values"


def _returned_cache(outputs: Any, keyword: str) -> Any:
    if keyword in outputs:
        return outputs[keyword]
    return getattr(outputs, keyword, None)


def _reorder(cache: Any, model: Any, index: torch.Tensor) -> Any:
    if cache is None:
        return None
    if hasattr(model, "_reorder_cache"):
        return model._reorder_cache(cache, index)
    if hasattr(cache, "reorder_cache"):
        cache.reorder_cache(index)
        return cache
    raise ValueError(f"{type(model).__name__}'s cache cannot be reordered for beam search")


class CausalLMRunner:
    """A transformers decoder-only model, fed one token per step after the prompt."""

    is_encoder_decoder = False

    def __init__(self, model: Any) -> None:
        self.model = model
        self.keyword = _cache_keyword(model)
        self.cache: Any = None
        self.padded = True

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # Without padding the causal mask alone is exact; skipping ours lets attention take its fast path.
        self.padded = not bool(attention_mask.all())
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask if self.padded else None,
            use_cache=True,
            return_dict=True,
        )
        self.cache = _returned_cache(out, self.keyword)
        return _last_logits(out.logits)

    def advance(self, sequences: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.model(
            input_ids=sequences[:, -1:],
            attention_mask=attention_mask if self.padded else None,
            use_cache=True,
            return_dict=True,
            **{self.keyword: self.cache},
        )
        self.cache = _returned_cache(out, self.keyword)
        return _last_logits(out.logits)

    def reorder(self, index: torch.Tensor) -> None:
        self.cache = _reorder(self.cache, self.model, index)


class EncoderDecoderRunner:
    """A transformers encoder-decoder: encode once, decode one token per step with the cache."""

    is_encoder_decoder = True

    def __init__(self, model: Any) -> None:
        self.model = model
        self.keyword = _cache_keyword(model)
        self.cache: Any = None
        self.encoder_outputs: Any = None
        self.encoder_mask: torch.Tensor | None = None

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, expand: int) -> None:
        """Run the encoder on the distinct prompts, then repeat each row ``expand`` times (as transformers does)."""
        encoder = self.model.get_encoder()
        outputs = encoder(input_ids=input_ids, attention_mask=attention_mask, return_dict=True)
        if expand > 1:
            outputs["last_hidden_state"] = outputs.last_hidden_state.repeat_interleave(
                expand, dim=0
            )
            attention_mask = attention_mask.repeat_interleave(expand, dim=0)
        self.encoder_outputs = outputs
        self.encoder_mask = attention_mask

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._decode(input_ids)

    def advance(self, sequences: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._decode(sequences[:, -1:])

    def _decode(self, decoder_input_ids: torch.Tensor) -> torch.Tensor:
        out = self.model(
            encoder_outputs=self.encoder_outputs,
            attention_mask=self.encoder_mask,
            decoder_input_ids=decoder_input_ids,
            use_cache=True,
            return_dict=True,
            **{self.keyword: self.cache},
        )
        self.cache = _returned_cache(out, self.keyword)
        return _last_logits(out.logits)

    def reorder(self, index: torch.Tensor) -> None:
        self.cache = _reorder(self.cache, self.model, index)


class CallableRunner:
    """Any ``fn(input_ids, attention_mask) -> logits`` ([rows, length, vocab] or [rows, vocab]); no cache."""

    is_encoder_decoder = False

    def __init__(self, fn: Callable[[torch.Tensor, torch.Tensor], Any]) -> None:
        self.fn = fn

    def _call(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = self.fn(input_ids, attention_mask)
        logits = getattr(logits, "logits", logits)
        if not isinstance(logits, torch.Tensor):
            raise TypeError(
                f"the model callable returned {type(logits).__name__}, not a tensor of logits"
            )
        return _last_logits(logits)

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._call(input_ids, attention_mask)

    def advance(self, sequences: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._call(sequences, attention_mask)

    def reorder(self, index: torch.Tensor) -> None:
        """Nothing to do: the loop passes the reordered sequences at every step."""


Runner = CausalLMRunner | EncoderDecoderRunner | CallableRunner


def runner_for(model: Any) -> Runner:
    """Pick the adapter: transformers models by their config, anything else as a plain callable."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(model, "forward") and hasattr(config, "is_encoder_decoder"):
        if config.is_encoder_decoder:
            return EncoderDecoderRunner(model)
        return CausalLMRunner(model)
    if callable(model):
        return CallableRunner(model)
    raise TypeError(
        f"cannot generate with {type(model).__name__}: pass a transformers model or a callable"
    )
