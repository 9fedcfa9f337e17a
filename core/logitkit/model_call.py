"""``generate()``'s model-side inputs: extra model keywords, prompt-less starts, per-row decoder starts, outputs.

Kept apart from ``logitkit.generation`` so that module only wires them in:

* ``split_keywords``: generate()'s keywords are settings when they name a
  ``generation:`` field, else model keywords the model must accept (as
  transformers' ``_validate_model_kwargs`` checks), else a config error;
* ``bos_prompt``: with ``input_ids=None`` every row starts from
  ``bos_token_id`` (batch size from the first tensor keyword, else 1);
* ``decoder_starts``: one decoder start id, or one per row;
* ``forward_options`` / ``attach_outputs``: the cache, compile and
  ``output_*`` settings handed to the model adapter, and what it recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from logitkit.caches import cache_factory
from logitkit.decoding import GenerationOutput
from logitkit.errors import ConfigError, Problem
from logitkit.forward import ForwardOptions, compile_config, model_keywords
from logitkit.models import Runner, is_transformers_model
from logitkit.pipeline import Pipeline
from logitkit.settings import GenerationSettings

SOURCE = "generate()"


def _problem(path: str, reason: str) -> ConfigError:
    return ConfigError([Problem(SOURCE, path, reason)])


def split_keywords(model: Any, keywords: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(settings, model keywords)``. A name neither takes stays a setting, so validation reports it."""
    fields = GenerationSettings.model_fields
    if keywords.get("inputs_embeds") is not None:
        raise _problem(
            "inputs_embeds",
            "prompts given as embeddings are not supported: pass input_ids (the loop extends token ids)",
        )
    rest = [k for k in keywords if k not in fields]
    if not rest or not is_transformers_model(model):
        return dict(keywords), {}
    unknown = set(model_keywords(model, rest))
    settings = {k: v for k, v in keywords.items() if k in fields or k in unknown}
    model_kwargs = {k: v for k, v in keywords.items() if k not in settings}
    return settings, model_kwargs


def bos_prompt(
    model: Any, pipeline: Pipeline, bos_token_id: int | None, model_kwargs: dict[str, Any]
) -> torch.Tensor:
    """A one-token prompt of ``bos_token_id`` per row, as transformers starts with no input_ids."""
    bos = bos_token_id if bos_token_id is not None else pipeline.tokens.bos
    for source in (getattr(model, "generation_config", None), getattr(model, "config", None)):
        if bos is None and source is not None:
            bos = getattr(source, "bos_token_id", None)
    if bos is None:
        raise _problem(
            "tokens.bos",
            "input_ids=None starts every row from the bos token, and none is set "
            "(pass bos_token_id=, set tokens.bos, or the model's bos_token_id)",
        )
    batch = next(
        (int(v.shape[0]) for v in model_kwargs.values() if isinstance(v, torch.Tensor) and v.dim()),
        1,
    )
    device = getattr(model, "device", None)
    return torch.full((batch, 1), int(bos), dtype=torch.long, device=device)


def decoder_starts(start: int | Sequence[int] | torch.Tensor, batch: int, like: torch.Tensor) -> torch.Tensor:
    """``[batch, 1]`` decoder start ids from one id or one per row (multilingual batches)."""
    if isinstance(start, int):
        return like.new_full((batch, 1), start)
    ids = torch.as_tensor(start, dtype=torch.long, device=like.device).flatten()
    if ids.shape[0] != batch:
        raise _problem(
            "tokens.decoder_start",
            f"decoder_start_token_id has {ids.shape[0]} ids for {batch} prompts (give one, or one per prompt)",
        )
    return ids.view(batch, 1)


def forward_options(
    config: GenerationSettings,
    model: Any,
    max_length: int,
    encoder_decoder: bool,
    model_kwargs: dict[str, Any],
) -> ForwardOptions:
    """The adapter's options from the settings; a plain callable takes none of them."""
    options = ForwardOptions(
        use_cache=config.use_cache,
        compile_config=compile_config(config.compile_config),
        disable_compile=config.disable_compile,
        model_kwargs=dict(model_kwargs),
        output_attentions=config.output_attentions,
        output_hidden_states=config.output_hidden_states,
    )
    if not is_transformers_model(model):
        asked = [
            name
            for name in ("cache_implementation", "cache_config", "output_attentions", "output_hidden_states")
            if getattr(config, name)
        ]
        if asked:
            raise _problem(
                f"generation.{asked[0]}",
                "needs a transformers model; a plain callable returns logits only and keeps no cache",
            )
        return options
    options.make_cache = cache_factory(config, model, max_length, encoder_decoder)
    return options


def attach_outputs(output: GenerationOutput, runner: Runner, config: GenerationSettings) -> None:
    """Copy the recorded attentions / hidden states into ``output``, under transformers' names."""
    recorded = getattr(runner, "recorded", None)
    if recorded is None:
        return
    if runner.is_encoder_decoder:
        if config.output_attentions:
            output.encoder_attentions = recorded.encoder_attentions
            output.decoder_attentions = tuple(recorded.attentions)
            output.cross_attentions = tuple(recorded.cross_attentions)
        if config.output_hidden_states:
            output.encoder_hidden_states = recorded.encoder_hidden_states
            output.decoder_hidden_states = tuple(recorded.hidden_states)
        return
    if config.output_attentions:
        output.attentions = tuple(recorded.attentions)
    if config.output_hidden_states:
        output.hidden_states = tuple(recorded.hidden_states)
