"""``logitkit.generate``: the decoding loop around any torch model.

This module resolves what a loop needs (settings, special tokens, the model
adapter, stopping criteria, token healing) into a ``DecodingJob`` and hands
it to a search strategy from the registry. The loops themselves are plugins
(the built-in ones live in ``logitkit_builtins.search``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from pydantic import ValidationError

from logitkit import prompts, streaming
from logitkit.config import validation_problems
from logitkit.contract_checks import check_search_output
from logitkit.decoding import DecodingJob, GenerationOutput
from logitkit.errors import ConfigError, Problem
from logitkit.formats.hf_processors import load_generation_config
from logitkit.formats.model_defaults import with_model_defaults
from logitkit.healing import HealedPrompts, heal_prompts
from logitkit.healing_transformers import check_tokenizer, heal_like_transformers
from logitkit.model_call import (
    attach_outputs,
    bos_prompt,
    decoder_starts,
    forward_options,
    split_keywords,
)
from logitkit.models import runner_for
from logitkit.pipeline import Pipeline
from logitkit.registry import Registry
from logitkit.registry import registry as default_registry
from logitkit.settings import GenerationSettings
from logitkit.stopping import FINISH_REASONS, StopContext, StoppingCriterion

#: transformers 5 generates this many new tokens when neither max_new_tokens nor max_length is set.
DEFAULT_NEW_TOKENS = 20

SOURCE = "generate()"

log = logging.getLogger("logitkit.generate")


def _settings(pipeline: Pipeline, overrides: dict[str, Any]) -> GenerationSettings:
    base = pipeline.generation.model_dump(exclude_unset=True)
    try:
        return GenerationSettings.model_validate({**base, **overrides})
    except ValidationError as exc:
        raise ConfigError(
            validation_problems(exc, GenerationSettings, SOURCE, "generation")
        ) from None


def _ids(value: int | Sequence[int] | torch.Tensor | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return tuple(int(v) for v in value.flatten().tolist())
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)


def _model_setting(model: Any, name: str) -> Any:
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        value = getattr(source, name, None) if source is not None else None
        if value is not None:
            return value
    return None


def _search_name(settings: GenerationSettings) -> str:
    if settings.search is not None:
        return settings.search
    if settings.num_beam_groups > 1:
        return "group_beam_search"
    return "beam_search" if settings.num_beams > 1 else "decode"


def _criteria(reg: Registry, context: StopContext) -> list[StoppingCriterion]:
    entries = sorted(
        reg.stopping_criteria.values(), key=lambda e: (getattr(e.cls, "priority", 0), e.name)
    )
    built: list[StoppingCriterion] = []
    for entry in entries:
        try:
            criterion = entry.cls.from_settings(context)
        except Exception as exc:  # one plugin's criterion must not break every generation
            log.warning(
                "logitkit: stopping criterion %r (plugin %r) failed to build and is skipped: %s: %s",
                entry.name, entry.plugin, type(exc).__name__, exc,
            )  # fmt: skip
            continue
        if criterion is not None:
            built.append(criterion)
    return built


def _problem(path: str, reason: str) -> ConfigError:
    return ConfigError([Problem(SOURCE, path, reason)])


def _special_tokens(
    model: Any, pipeline: Pipeline, eos_token_id: Any, pad_token_id: int | None
) -> tuple[tuple[int, ...], int]:
    """``(eos ids, pad id)``: keyword, then the config's ``tokens:``, then the model's config."""
    # An explicit eos_token_id=[] means "no eos"; None falls back to the config, then the model.
    eos = _ids(eos_token_id)
    if eos is None:
        eos = tuple(pipeline.tokens.eos or ()) or _ids(_model_setting(model, "eos_token_id")) or ()
    pad = pad_token_id if pad_token_id is not None else pipeline.tokens.pad
    if pad is None:
        pad = _model_setting(model, "pad_token_id")
    if pad is None:
        pad = eos[0] if eos else 0  # transformers also pads with the first eos id
    return eos, int(pad)


def _decoder_start(
    model: Any, pipeline: Pipeline, explicit: int | Sequence[int] | torch.Tensor | None
) -> int | Sequence[int] | torch.Tensor:
    """One decoder start id, or one per prompt (a list or tensor, from any of the sources)."""
    for value in (
        explicit,
        pipeline.tokens.decoder_start,
        _model_setting(model, "decoder_start_token_id"),
        _model_setting(model, "bos_token_id"),
    ):
        if value is not None:
            return int(value) if isinstance(value, int) else value
    raise ValueError(
        "an encoder-decoder needs decoder_start_token_id "
        "(the argument, tokens.decoder_start, or the model's config)"
    )


def _max_length(config: GenerationSettings, model: Any, prompt_length: int) -> int:
    """The total length limit, by transformers 5's rules (``_prepare_generated_length``).

    ``max_new_tokens`` wins over ``max_length`` when both are set (the
    settings first, then the model's generation config); with neither,
    generation runs for ``DEFAULT_NEW_TOKENS`` new tokens, capped by the
    model's ``max_position_embeddings``.
    """
    new_tokens = config.max_new_tokens
    total = config.max_length
    if new_tokens is None and total is None:
        new_tokens = _generation_config_setting(model, "max_new_tokens")
        total = _generation_config_setting(model, "max_length")
        if total is not None and total == _library_default_max_length():
            total = None  # transformers 4.x fills in 20 itself and still treats it as unset
    if new_tokens is not None:
        return prompt_length + int(new_tokens)
    if total is None:
        limit = prompt_length + DEFAULT_NEW_TOKENS
        positions = _config_setting(model, "max_position_embeddings")
        return min(limit, int(positions)) if isinstance(positions, int) and positions > prompt_length else limit
    if total <= prompt_length:
        raise _problem(
            "generation.max_length",
            f"must exceed the prompt length {prompt_length} (got {total}); set max_new_tokens instead",
        )
    return int(total)


def _library_default_max_length() -> int | None:
    try:
        from transformers import GenerationConfig
    except ImportError:
        return None
    value = GenerationConfig().max_length  # type: ignore[no-untyped-call]
    return int(value) if value is not None else None


def _generation_config_setting(model: Any, name: str) -> Any:
    source = getattr(model, "generation_config", None)
    return getattr(source, name, None) if source is not None else None


def _config_setting(model: Any, name: str) -> Any:
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "get_text_config"):
        config = config.get_text_config()
    return getattr(config, name, None) if config is not None else None


def _row_seeds(
    seeds: Any, pipeline: Pipeline, config: GenerationSettings, batch: int
) -> torch.Tensor | None:
    given = seeds if seeds is not None else pipeline.context.get("seeds")
    if given is not None:
        row_seeds = torch.as_tensor(given, dtype=torch.int64).flatten()
        if row_seeds.shape[0] != batch:
            raise ValueError(f"seeds has {row_seeds.shape[0]} entries for {batch} prompts")
        return row_seeds
    if config.seed is not None:
        return torch.full((batch,), config.seed, dtype=torch.int64)
    return None


def _pipeline_for(generation_config: Any, model: Any, input_ids: Any, reg: Registry) -> Pipeline:
    """``Pipeline.from_generation_config`` with the (decoder) prompt length these inputs give, over the
    model's own generation config (``model.generate`` fills unset fields from it)."""
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False):
        seq_length: int | None = 1  # the decoder starts from its start token
    else:
        seq_length = int(input_ids.shape[-1]) if isinstance(input_ids, torch.Tensor) else None
    gc = with_model_defaults(load_generation_config(generation_config), model)
    return Pipeline.from_generation_config(gc, registry=reg, input_ids_seq_length=seq_length, model=model)


def _healing_step(model: Any, pad: int | None) -> Callable[[torch.Tensor, torch.Tensor, dict[int, float]], torch.Tensor]:
    """transformers' healing step: ``generate(row, GenerationConfig(max_new_tokens=1, sequence_bias=...))``."""

    def step(row: torch.Tensor, mask: torch.Tensor, bias: dict[int, float]) -> torch.Tensor:
        gc = {"max_new_tokens": 1, "pad_token_id": pad, "sequence_bias": [[[t], b] for t, b in bias.items()]}
        return generate(model, row, attention_mask=mask, generation_config=gc).sequences

    return step


def _assistant_extra(model: Any, tokenizer: Any) -> dict[str, Any]:
    """What the speculative searches read from ``job.extra``."""
    extra: dict[str, Any] = {}
    if model is not None:
        extra["assistant_model"] = model
    if tokenizer is not None:
        extra["assistant_tokenizer"] = tokenizer
    return extra


def generate(
    model: Any,
    input_ids: torch.Tensor | str | Sequence[str] | None,
    pipeline: Pipeline | Any = None,
    *,
    attention_mask: torch.Tensor | None = None,
    tokenizer: Any = None,
    seeds: torch.Tensor | Sequence[int] | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int | None = None,
    decoder_start_token_id: int | Sequence[int] | torch.Tensor | None = None,
    bos_token_id: int | None = None,
    registry: Registry | None = None,
    on_tokens: Callable[[torch.Tensor], None] | None = None,
    streamer: Any = None,
    generation_config: Any = None,
    assistant_model: Any = None,
    assistant_tokenizer: Any = None,
    **keywords: Any,
) -> GenerationOutput:
    """Generate from ``input_ids`` ([batch, length], left-padded) with ``pipeline``.

    ``model`` is a transformers causal LM, a transformers encoder-decoder
    (``input_ids`` then feed the encoder), or any callable
    ``fn(input_ids, attention_mask) -> logits``. ``pipeline`` is a
    ``Pipeline`` or anything ``Pipeline.from_config`` accepts (None: greedy).
    Keyword ``settings`` override the pipeline's ``generation:`` section
    (``max_new_tokens``, ``num_beams``, ``stop_strings``, ...). ``seeds`` gives
    one sample seed per prompt (the ``seed`` setting gives one for all).
    Special tokens come from the keywords, then the pipeline's ``tokens:``,
    then the model's generation config. ``on_tokens`` is called with each
    step's chosen tokens ([rows]) by strategies that pick one token per row
    per step (``decode``); ``streamer`` (a transformers ``TextStreamer``,
    ``TextIteratorStreamer``, ...) is fed the same way (``logitkit.streaming``).
    ``assistant_model`` (and ``assistant_tokenizer`` when its tokenizer differs)
    drafts for the speculative searches (``assisted``, ``universal_assisted``).
    ``input_ids`` may also be text, one string or a list: it is tokenized with
    ``tokenizer`` and left-padded, and ``output.texts`` holds each row's new text
    (``logitkit.prompts``). The pipeline is not changed: every call keeps
    its own state, so one pipeline serves concurrent calls.

    Other keywords go to the model's forward pass, as in transformers
    (``token_type_ids=``, ...): a name that is neither a setting nor taken by
    the model is an error. ``input_ids=None`` starts every row from
    ``bos_token_id``; ``decoder_start_token_id`` may give one id per prompt.
    ``generation_config`` (a transformers ``GenerationConfig``, a dict or a
    path) stands in for ``pipeline``: ``Pipeline.from_generation_config`` builds
    it for these prompts, so the call does what ``model.generate(ids,
    generation_config=gc)`` does.
    """
    reg = registry if registry is not None else default_registry()
    if generation_config is not None:
        if pipeline is not None:
            raise ValueError("pass a pipeline or a generation_config, not both")
        pipeline = _pipeline_for(generation_config, model, input_ids, reg)
    if not isinstance(pipeline, Pipeline):
        pipeline = Pipeline.from_config([] if pipeline is None else pipeline, registry=reg)
    settings, model_kwargs = split_keywords(model, keywords)
    config = _settings(pipeline, settings)
    tokenizer = tokenizer if tokenizer is not None else pipeline.context.get("tokenizer")
    eos, pad = _special_tokens(model, pipeline, eos_token_id, pad_token_id)
    texts = prompts.text_prompts(input_ids) if input_ids is not None else None
    if input_ids is None:
        input_ids = bos_prompt(model, pipeline, bos_token_id, model_kwargs)
    if texts is not None:
        input_ids, attention_mask = prompts.encode_prompts(texts, tokenizer, pad)
    elif not isinstance(input_ids, torch.Tensor):
        raise TypeError("input_ids must be a LongTensor [batch, length], a string, or a list of strings")
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [batch, length], got shape {tuple(input_ids.shape)}")
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    if assistant_model is not None and config.search is None:
        # transformers' generate(assistant_model=...): assisted decoding, universal with a second tokenizer.
        config = config.model_copy(
            update={"search": "universal_assisted" if assistant_tokenizer is not None else "assisted"}
        )
    if streamer is not None and _search_name(config) != "decode":
        raise ValueError(f"a streamer needs a search that picks one token per step, not {_search_name(config)!r}")

    runner = runner_for(model)
    encoder_ids = encoder_mask = None
    decoder_ids, decoder_mask = input_ids, attention_mask
    if runner.is_encoder_decoder:
        start = _decoder_start(model, pipeline, decoder_start_token_id)
        encoder_ids, encoder_mask = input_ids, attention_mask
        decoder_ids = decoder_starts(start, int(input_ids.shape[0]), input_ids)
        decoder_mask = torch.ones_like(decoder_ids)

    healed: HealedPrompts | None = None
    if config.token_healing:
        if tokenizer is None:
            raise ValueError("token_healing needs a tokenizer: pass tokenizer= to generate()")
        if runner.is_encoder_decoder:
            raise _problem("generation.token_healing", "applies to decoder-only models, not encoder-decoders "
                           "(transformers' heal_tokens fails on them too)")
        if config.token_healing == "constrain":
            healed = heal_prompts(decoder_ids, decoder_mask, tokenizer, pad)
            decoder_ids, decoder_mask = healed.input_ids, healed.attention_mask
        else:
            check_tokenizer(tokenizer)
            step = _healing_step(model, tokenizer.pad_token_id)
            model_eos = _ids(_generation_config_setting(model, "eos_token_id")) or ()
            decoder_ids, decoder_mask = heal_like_transformers(decoder_ids, decoder_mask, tokenizer, model_eos, step)

    prompt_length = int(decoder_ids.shape[-1])
    max_length = _max_length(config, model, prompt_length)
    if config.stop_strings and tokenizer is None:
        raise _problem("generation.stop_strings", "need a tokenizer: pass tokenizer= to generate()")
    options = forward_options(config, model, max_length, runner.is_encoder_decoder, model_kwargs)
    runner = runner_for(model, options)
    stop_context = StopContext(config, eos, prompt_length, max_length, tokenizer, time.monotonic())

    name = _search_name(config)
    entry = reg.search_strategies.get(name)
    if entry is None:
        known = ", ".join(sorted(reg.search_strategies)) or "none"
        raise _problem("generation.search", f"unknown search strategy {name!r}; known: {known}")
    job = DecodingJob(
        runner=runner,
        pipeline=pipeline,
        settings=config,
        input_ids=decoder_ids,
        attention_mask=decoder_mask,
        eos=eos,
        pad=pad,
        max_length=max_length,
        criteria=_criteria(reg, stop_context),
        encoder_input_ids=encoder_ids,
        encoder_attention_mask=encoder_mask,
        seeds=_row_seeds(seeds, pipeline, config, input_ids.shape[0]),
        tokenizer=tokenizer,
        model=model,
        healed=healed,
        on_tokens=streaming.with_streamer(streamer, decoder_ids, on_tokens),
        extra=_assistant_extra(assistant_model, assistant_tokenizer),
    )
    try:
        with torch.inference_mode():
            output: GenerationOutput = entry.value(job)
    finally:
        if streamer is not None:
            streamer.end()  # also on failure, so a TextIteratorStreamer's reader is released
    rows = input_ids.shape[0] * config.num_return_sequences
    output = check_search_output(name, entry.plugin, output, rows, FINISH_REASONS[1:])
    attach_outputs(output, runner, config)
    if texts is not None:
        output.texts = prompts.decode_new(output.new_tokens, tokenizer, eos)
    return output
