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

from logitkit.forward import (
    ForwardOptions,
    Recorded,
    accepts,
    encoder_kwargs,
    expand_rows,
    flags,
    positions_from_mask,
    step_call,
)


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


def _grow(values: torch.Tensor, width: int, step: int) -> torch.Tensor:
    """``values`` cut or extended to ``width`` columns, each new one its left neighbour plus ``step``."""
    have = int(values.shape[-1])
    if width <= have:
        return values[:, :width]
    offsets = torch.arange(1, width - have + 1, device=values.device, dtype=values.dtype) * step
    return torch.cat([values, values[:, -1:] + offsets], dim=-1)


class CausalLMRunner:
    """A transformers decoder-only model, fed one token per step after the prompt (the whole sequence without a cache)."""

    is_encoder_decoder = False

    def __init__(self, model: Any, options: ForwardOptions | None = None) -> None:
        self.model = model
        self.options = options or ForwardOptions()
        self.keyword = _cache_keyword(model)
        self.cache: Any = None
        self.padded = True
        self.recorded = Recorded()
        self.call: Callable[..., Any] = model
        # As transformers: positions counted from the mask, logits only for the last position.
        self.takes_positions = accepts(model.forward, "position_ids")
        self.keep_last = accepts(model.forward, "logits_to_keep")
        self.positions: torch.Tensor | None = None
        self.token_types: torch.Tensor | None = None
        self.kwargs: dict[str, Any] = {}

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # Without padding the causal mask alone is exact; skipping ours lets attention take its fast path.
        self.padded = not bool(attention_mask.all())
        self.kwargs = expand_rows(self.options.model_kwargs, int(input_ids.shape[0]))
        self.token_types = self.kwargs.pop("token_type_ids", None)
        self.positions = positions_from_mask(attention_mask) if self.takes_positions else None
        if self.options.use_cache and self.options.make_cache is not None:
            self.cache = self.options.make_cache(int(input_ids.shape[0]), None)
        out = self._forward(self.model, input_ids, attention_mask)
        self.call = step_call(self.model, self.cache, self.options) if self.options.use_cache else self.model
        return _last_logits(out.logits)

    def advance(self, sequences: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self._follow(int(sequences.shape[-1]))
        fed = sequences[:, -1:] if self.options.use_cache else sequences
        return _last_logits(self._forward(self.call, fed, attention_mask).logits)

    def _follow(self, width: int) -> None:
        """Grow (or cut) the positions and token types to the sequence's width: one step or several."""
        if self.positions is not None:
            self.positions = _grow(self.positions, width, step=1)
        if self.token_types is not None:
            self.token_types = _grow(self.token_types, width, step=0)

    def _forward(self, call: Callable[..., Any], input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        width = int(input_ids.shape[-1])
        kwargs = {**self.kwargs, **flags(self.options)}
        if self.positions is not None:
            kwargs["position_ids"] = self.positions[:, -width:]
        if self.token_types is not None:
            kwargs["token_type_ids"] = self.token_types[:, -width:]
        if self.keep_last:
            kwargs["logits_to_keep"] = 1
        if self.options.use_cache and self.cache is not None:
            kwargs[self.keyword] = self.cache
        out = call(
            input_ids=input_ids,
            attention_mask=attention_mask if self.padded else None,
            use_cache=self.options.use_cache,
            return_dict=True,
            **kwargs,
        )
        if self.options.use_cache:
            self.cache = _returned_cache(out, self.keyword)
        opts = self.options
        self.recorded.add(out, False, opts.output_attentions, opts.output_hidden_states)
        return out

    def reorder(self, index: torch.Tensor) -> None:
        self.cache = _reorder(self.cache, self.model, index)
        if self.positions is not None:
            self.positions = self.positions.index_select(0, index)
        if self.token_types is not None:
            self.token_types = self.token_types.index_select(0, index)


class EncoderDecoderRunner:
    """A transformers encoder-decoder: encode once, decode one token per step with the cache."""

    is_encoder_decoder = True

    def __init__(self, model: Any, options: ForwardOptions | None = None) -> None:
        self.model = model
        self.options = options or ForwardOptions()
        self.keyword = _cache_keyword(model)
        self.cache: Any = None
        self.encoder_outputs: Any = None
        self.encoder_mask: torch.Tensor | None = None
        self.recorded = Recorded()
        self.call: Callable[..., Any] = model
        self.kwargs: dict[str, Any] = {}

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, expand: int) -> None:
        """Run the encoder on the distinct prompts, then repeat each row ``expand`` times (as transformers does)."""
        encoder = self.model.get_encoder()
        extra = encoder_kwargs(encoder, self.options.model_kwargs)
        outputs = encoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            return_dict=True,
            **extra,
            **flags(self.options),
        )
        # Recorded before the expansion, as transformers returns them: one row per prompt.
        if self.options.output_attentions:
            self.recorded.encoder_attentions = outputs.attentions
        if self.options.output_hidden_states:
            self.recorded.encoder_hidden_states = outputs.hidden_states
        if expand > 1:
            outputs["last_hidden_state"] = outputs.last_hidden_state.repeat_interleave(
                expand, dim=0
            )
            attention_mask = attention_mask.repeat_interleave(expand, dim=0)
        self.encoder_outputs = outputs
        self.encoder_mask = attention_mask
        rest = {k: v for k, v in self.options.model_kwargs.items() if k not in extra}
        self.kwargs = expand_rows(rest, int(attention_mask.shape[0]))

    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.options.use_cache and self.options.make_cache is not None:
            length = int(self.encoder_outputs.last_hidden_state.shape[1])
            self.cache = self.options.make_cache(int(input_ids.shape[0]), length)
        logits = self._decode(self.model, input_ids)
        self.call = step_call(self.model, self.cache, self.options) if self.options.use_cache else self.model
        return logits

    def advance(self, sequences: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self._decode(self.call, sequences[:, -1:] if self.options.use_cache else sequences)

    def _decode(self, call: Callable[..., Any], decoder_input_ids: torch.Tensor) -> torch.Tensor:
        kwargs = {**self.kwargs, **flags(self.options)}
        if self.options.use_cache and self.cache is not None:
            kwargs[self.keyword] = self.cache
        out = call(
            encoder_outputs=self.encoder_outputs,
            attention_mask=self.encoder_mask,
            decoder_input_ids=decoder_input_ids,
            use_cache=self.options.use_cache,
            return_dict=True,
            **kwargs,
        )
        if self.options.use_cache:
            self.cache = _returned_cache(out, self.keyword)
        opts = self.options
        self.recorded.add(out, True, opts.output_attentions, opts.output_hidden_states)
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


def is_transformers_model(model: Any) -> bool:
    config = getattr(model, "config", None)
    return config is not None and hasattr(model, "forward") and hasattr(config, "is_encoder_decoder")


def runner_for(model: Any, options: ForwardOptions | None = None) -> Runner:
    """Pick the adapter: transformers models by their config, anything else as a plain callable."""
    if is_transformers_model(model):
        if model.config.is_encoder_decoder:
            return EncoderDecoderRunner(model, options)
        return CausalLMRunner(model, options)
    if callable(model):
        return CallableRunner(model)
    raise TypeError(
        f"cannot generate with {type(model).__name__}: pass a transformers model or a callable"
    )
