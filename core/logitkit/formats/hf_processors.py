"""A transformers ``GenerationConfig`` as a logitkit config, processor for processor.

The translation mirrors ``GenerationMixin._get_logits_processor`` in
transformers 5.x: the same conditions decide which processors exist, and
they run in the same order (the config uses ``order: listed``). Processor
names are the GenerationConfig field names; each is resolved through the
registry, so a plugin that replaces a built-in also replaces it here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from logitkit.errors import ConfigError, Problem
from logitkit.registry import Registry

if TYPE_CHECKING:
    from transformers import GenerationConfig

log = logging.getLogger("logitkit.generation_config")

#: transformers 5 fills these in when a config leaves them unset.
DEFAULT_TOP_K = 50
DEFAULT_NEW_TOKENS = 20

#: Where the code-only prefix constraint sits in transformers' list: after min_new_tokens.
PREFIX_AFTER = ("sequence_bias", "encoder_repetition_penalty", "repetition_penalty", "no_repeat_ngram_size",
                "encoder_no_repeat_ngram_size", "bad_words_ids", "min_length", "min_new_tokens")  # fmt: skip


def load_generation_config(obj: Any) -> GenerationConfig:
    """A ``GenerationConfig`` from itself, a dict, or a path to generation_config.json (or its folder)."""
    from transformers import GenerationConfig

    if isinstance(obj, GenerationConfig):
        return obj
    if isinstance(obj, Mapping):
        return GenerationConfig.from_dict(_with_compile_config(dict(obj)))
    if isinstance(obj, (str, Path)):
        path = Path(obj)
        if path.is_dir():
            path = path / "generation_config.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError([Problem(str(path), "", "file not found")]) from None
        except json.JSONDecodeError as exc:
            raise ConfigError([Problem(str(path), "", f"line {exc.lineno}: JSON syntax error: {exc.msg}")]) from None
        if not isinstance(data, dict):
            raise ConfigError([Problem(str(path), "", "a generation config must be a JSON object")])
        return GenerationConfig.from_dict(_with_compile_config(data))
    raise TypeError(f"expected a GenerationConfig, a dict or a path, not {type(obj).__name__}")


def _with_compile_config(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with a ``compile_config`` mapping made a ``CompileConfig``.

    transformers 5.24 writes it to generation_config.json as a mapping, and its
    own ``from_dict`` then refuses to read it back.
    """
    value = data.get("compile_config")
    if not isinstance(value, Mapping):
        return data
    from logitkit.forward import compile_config

    return {**data, "compile_config": compile_config(value)}


def _as_list(value: Any) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.flatten().tolist()]
    return [int(value)] if isinstance(value, int) else [int(v) for v in value]


def tokens_section(gc: GenerationConfig, model: Any = None) -> dict[str, Any]:
    tokens: dict[str, Any] = {}
    eos = _as_list(gc.eos_token_id)
    if eos:
        tokens["eos"] = eos
    for key, field in (("bos", "bos_token_id"), ("pad", "pad_token_id"), ("decoder_start", "decoder_start_token_id")):
        value = getattr(gc, field, None)
        if isinstance(value, int) or (key == "decoder_start" and isinstance(value, list) and value):
            tokens[key] = value  # decoder_start may hold one id per prompt
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        vocab = getattr(config.get_text_config(), "vocab_size", None)
        if isinstance(vocab, int):
            tokens["vocab_size"] = vocab
    return tokens


def _encoder_ids_usable(ids: Any) -> bool:
    """False only for a given encoder input transformers would ignore (a dummy filled with -100).

    Without ``encoder_input_ids`` the encoder processors still run: at each step they read
    ``ctx.encoder_input_ids`` (the encoder input inside ``generate``), or the prompt on a
    decoder-only model, which is what transformers 5 passes them.
    """
    if ids is None:
        return True
    return isinstance(ids, torch.Tensor) and ids.dim() == 2 and not bool((ids < 0).any())


def logits_entries(gc: GenerationConfig, *, input_ids_seq_length: int | None, encoder_input_ids: Any) -> list[dict[str, Any]]:
    """The processors ``_get_logits_processor`` would build before the sampling warpers, in its order."""
    entries: list[dict[str, Any]] = []
    add = entries.append
    if gc.guidance_scale is not None and gc.guidance_scale != 1:
        guidance: dict[str, Any] = {"name": "guidance_scale", "guidance_scale": gc.guidance_scale}
        if gc.use_cache is not None:
            guidance["use_cache"] = gc.use_cache
        add(guidance)
    if gc.sequence_bias is not None:
        bias = gc.sequence_bias
        add({"name": "sequence_bias", "sequence_bias": dict(bias) if isinstance(bias, Mapping) else list(bias)})
    has_encoder = _encoder_ids_usable(encoder_input_ids)
    if gc.encoder_repetition_penalty is not None and gc.encoder_repetition_penalty != 1.0:
        if has_encoder:
            add({"name": "encoder_repetition_penalty", "penalty": gc.encoder_repetition_penalty})
        else:
            log.warning("encoder_repetition_penalty: the encoder_input_ids given are not token ids; left out, as transformers does")
    if gc.repetition_penalty is not None and gc.repetition_penalty != 1.0:
        # generate() skips each row's left padding, read from the attention mask in the context.
        add({"name": "repetition_penalty", "penalty": gc.repetition_penalty})
    if gc.no_repeat_ngram_size is not None and gc.no_repeat_ngram_size > 0:
        add({"name": "no_repeat_ngram_size", "ngram_size": gc.no_repeat_ngram_size})
    if gc.encoder_no_repeat_ngram_size is not None and gc.encoder_no_repeat_ngram_size > 0:
        if has_encoder:
            add({"name": "encoder_no_repeat_ngram_size", "ngram_size": gc.encoder_no_repeat_ngram_size})
        else:
            log.warning("encoder_no_repeat_ngram_size: the encoder_input_ids given are not token ids; left out, as transformers does")
    if gc.bad_words_ids is not None:
        add({"name": "bad_words_ids", "bad_words_ids": gc.bad_words_ids})
    has_eos = bool(_as_list(gc.eos_token_id))
    min_length = gc.min_length
    if gc.min_new_tokens is not None and input_ids_seq_length is not None:
        # transformers 5 overwrites min_length with the prompt plus min_new_tokens.
        min_length = gc.min_new_tokens + input_ids_seq_length
    if min_length is not None and has_eos and min_length > 0:
        add({"name": "min_length", "min_length": min_length})
    if gc.min_new_tokens is not None and has_eos and gc.min_new_tokens > 0:
        add({"name": "min_new_tokens", "min_new_tokens": gc.min_new_tokens})
    if gc.forced_bos_token_id is not None:
        add({"name": "forced_bos_token_id", "forced_bos_token_id": gc.forced_bos_token_id})
    if gc.forced_eos_token_id is not None:
        add({"name": "forced_eos_token_id", "forced_eos_token_id": _as_list(gc.forced_eos_token_id), **_max_length(gc)})
    if gc.remove_invalid_values is True:
        add({"name": "remove_invalid_values"})
    if gc.exponential_decay_length_penalty is not None:
        start, factor = gc.exponential_decay_length_penalty
        add({"name": "exponential_decay_length_penalty", "start_index": start, "decay_factor": factor})
    if gc.suppress_tokens is not None:
        add({"name": "suppress_tokens", "suppress_tokens": list(gc.suppress_tokens)})
    if gc.begin_suppress_tokens is not None:
        # transformers moves the step one later when a forced bos follows a one-token decoder prompt.
        shifted = not ((input_ids_seq_length or 0) > 1 or gc.forced_bos_token_id is None)
        add({"name": "begin_suppress_tokens", "begin_suppress_tokens": list(gc.begin_suppress_tokens), "begin_step": int(shifted)})
    forced = getattr(gc, "forced_decoder_ids", None)
    pairs = [list(pair) for pair in forced or () if pair[1] is not None]  # [1, null]: position 1 is free
    if pairs:
        # Gone from transformers 5 (Whisper now uses task/language); kept for older generation_config.json files.
        add({"name": "forced_decoder_ids", "forced_decoder_ids": pairs})
    return entries


def _max_length(gc: GenerationConfig) -> dict[str, int]:
    # transformers 5's length rules: max_new_tokens wins, else max_length, else 20 new tokens.
    if gc.max_new_tokens is not None:
        return {"max_new_tokens": gc.max_new_tokens}
    if gc.max_length is not None and gc.max_length != _library_default_max_length():
        return {"max_length": gc.max_length}
    return {"max_new_tokens": DEFAULT_NEW_TOKENS}


def _library_default_max_length() -> int | None:
    from transformers import GenerationConfig

    value = GenerationConfig().max_length  # type: ignore[no-untyped-call]  # None in transformers 5; 4.x fills in 20 and treats it as unset
    return int(value) if value is not None else None


def sampling_entries(gc: GenerationConfig) -> list[dict[str, Any]]:
    """The warpers transformers adds only when ``do_sample`` is true, with its conditions."""
    if not gc.do_sample:
        return []
    keep = 1
    if gc.num_beams is not None and gc.num_beams > 1:
        # Beam search keeps one non-eos token per eos token to explore continuations.
        eos = _as_list(gc.eos_token_id)
        keep = len(eos) + 1 if eos else 2
    entries: list[dict[str, Any]] = []
    if gc.temperature is not None and gc.temperature != 1.0:
        entries.append({"name": "temperature", "temperature": gc.temperature})
    if gc.top_h is not None:
        entries.append({"name": "top_h", "top_h": gc.top_h})
    # An unset top_k is transformers' default of 50 (GenerationConfig._get_default_generation_params).
    top_k = gc.top_k if gc.top_k is not None else DEFAULT_TOP_K
    if top_k != 0:
        entries.append({"name": "top_k", "top_k": top_k, "min_tokens_to_keep": keep})
    if gc.top_p is not None and gc.top_p < 1.0:
        entries.append({"name": "top_p", "top_p": gc.top_p, "min_tokens_to_keep": keep})
    if gc.min_p is not None:
        entries.append({"name": "min_p", "min_p": gc.min_p, "min_tokens_to_keep": keep})
    if gc.typical_p is not None and gc.typical_p < 1.0:
        entries.append({"name": "typical_p", "typical_p": gc.typical_p, "min_tokens_to_keep": keep})
    if gc.epsilon_cutoff is not None and 0.0 < gc.epsilon_cutoff < 1.0:
        entries.append({"name": "epsilon_cutoff", "epsilon_cutoff": gc.epsilon_cutoff, "min_tokens_to_keep": keep})
    if gc.eta_cutoff is not None and 0.0 < gc.eta_cutoff < 1.0:
        entries.append({"name": "eta_cutoff", "eta_cutoff": gc.eta_cutoff, "min_tokens_to_keep": keep})
    return entries


def watermarking_entry(gc: GenerationConfig) -> dict[str, Any] | None:
    """The watermark processor, with the watermarking config's own fields."""
    wm = gc.watermarking_config
    if wm is None:
        return None
    fields = wm.to_dict() if hasattr(wm, "to_dict") else dict(wm)
    fields = {k: v for k, v in fields.items() if k not in {"transformers_version", "debug_mode"}}
    return {"name": "watermarking", **fields}


def to_config(
    gc: GenerationConfig,
    *,
    input_ids_seq_length: int | None = None,
    encoder_input_ids: Any = None,
    model: Any = None,
) -> dict[str, Any]:
    """The logitkit config (a plain dict) equivalent to ``gc``'s logits processors, in transformers' order."""
    processors = logits_entries(gc, input_ids_seq_length=input_ids_seq_length, encoder_input_ids=encoder_input_ids)
    processors += sampling_entries(gc)
    watermark = watermarking_entry(gc)
    if watermark is not None:
        processors.append(watermark)  # after every other processor, before renormalization (as transformers)
    if gc.renormalize_logits is True:
        processors.append({"name": "renormalize_logits"})
    return {
        "order": "listed",
        "tokens": tokens_section(gc, model),
        "processors": processors,
        # multinomial draws from torch's RNG as transformers does: the same seed gives the same tokens.
        "selector": "multinomial" if gc.do_sample else "greedy",
    }


def prefix_slot(names: list[str]) -> int:
    """Where transformers puts the prefix constraint among processors with these names, in run order."""
    return sum(1 for name in names if name in PREFIX_AFTER or name == "guidance_scale")


def prefix_processor(
    reg: Registry, gc: GenerationConfig, tokens: Any, fn: Callable[[int, torch.Tensor], list[int]]
) -> Any:
    """The registry's ``prefix_allowed_tokens`` processor around transformers' per-row callable."""
    entry = reg.processors.get("prefix_allowed_tokens")
    if entry is None:
        raise ConfigError([Problem("<generation_config>", "prefix_allowed_tokens_fn", "no registered 'prefix_allowed_tokens' processor")])
    beams = max(gc.num_beams or 1, gc.num_return_sequences or 1)
    # The processor takes transformers' per-row callable as per_row_fn= (see docs/processors/masks.md).
    return entry.cls(entry.cls.Config(num_beams=beams), tokens, per_row_fn=fn)
