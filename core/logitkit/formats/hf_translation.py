"""A transformers ``GenerationConfig`` as a whole logitkit config: the one translation.

``Pipeline.from_generation_config``, ``logitkit.generate(generation_config=)``
and ``logitkit convert`` (reading a ``generation_config.json``) all call
``translate``, so they carry the same fields the same way. The processors come
from ``hf_processors``; this module adds the ``generation:`` section, the
selector and search, and accounts for every other field through the table in
``gc_fields``: each one is carried, warned about, or refused by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from logitkit.formats.common import Conversion, Loss
from logitkit.formats.gc_fields import (
    GENERATION_FIELDS,
    METADATA,
    MODEL_CALL_FIELDS,
    NO_EFFECT,
    REFUSED,
    SAMPLING_ONLY,
    SEARCH_FIELDS,
    SPECULATIVE_FIELDS,
    is_set,
    known_fields,
)
from logitkit.formats.hf_processors import to_config
from logitkit.formats.hf_search_modes import SearchModeError, ignored_fields, search_mode
from logitkit.formats.speculative import consumed_fields, speculative_generation
from logitkit.model_settings import from_generation_config as model_call_settings
from logitkit.model_settings import unused_cache_options

if TYPE_CHECKING:
    from transformers import GenerationConfig

#: ``selector=`` values: ``multinomial`` reproduces transformers under ``torch.manual_seed``;
#: ``sample`` is logitkit's batch-invariant (Gumbel, per-row seed) sampler.
SamplingSelector = Literal["multinomial", "sample"]


@dataclass
class Translation:
    """The logitkit config for a ``GenerationConfig``, and what could not be carried.

    ``conversion.lost`` lists every field not carried (refused ones included);
    ``refused`` the subset that would change the tokens, which a pipeline must
    not be built without.
    """

    conversion: Conversion
    refused: list[Loss] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        value: dict[str, Any] = self.conversion.value
        return value


def fields_of(gc: GenerationConfig) -> dict[str, Any]:
    """The config's fields and custom entries, as ``to_dict`` writes them."""
    data: dict[str, Any] = gc.to_dict()
    return data


def generation_section(gc: GenerationConfig, data: dict[str, Any]) -> dict[str, Any]:
    """The ``generation:`` settings, the search strategy included."""
    section: dict[str, Any] = {
        name: data[name]
        for name in GENERATION_FIELDS
        if name in data and is_set(name, data[name])
    }
    if section.get("stop_strings") is not None and isinstance(section["stop_strings"], str):
        section["stop_strings"] = [section["stop_strings"]]  # transformers accepts one string too
    if gc.do_sample and (gc.num_beams or 1) > 1 and (gc.num_beam_groups or 1) == 1:
        section["search"] = "beam_sample"
    section.update(model_call_settings(gc))
    if is_set("max_cache_len", data.get("max_cache_len")):
        section["cache_config"] = {**section.get("cache_config", {}), "max_cache_len": data["max_cache_len"]}
    return section


def translate(
    gc: GenerationConfig,
    *,
    input_ids_seq_length: int | None = None,
    encoder_input_ids: Any = None,
    model: Any = None,
    selector: SamplingSelector = "multinomial",
    search_fields: dict[str, Any] | None = None,
) -> Translation:
    """The whole logitkit config for ``gc``; see the module docstring.

    ``search_fields`` are decoding-mode fields read from a file beside ``gc``
    (constraints written as mappings, which a ``GenerationConfig`` cannot hold).
    """
    data = {**fields_of(gc), **(search_fields or {})}
    config = to_config(
        gc, input_ids_seq_length=input_ids_seq_length, encoder_input_ids=encoder_input_ids, model=model
    )
    if gc.do_sample:
        config["selector"] = selector
    generation = generation_section(gc, data)
    result = Translation(Conversion(config))
    conv = result.conversion
    # 4.x's decoding modes (contrastive, DoLa, constrained beam) become registered search strategies.
    try:
        mode = search_mode(data)
    except SearchModeError as exc:
        mode = {}
        _refuse(result, "search mode", str(exc))
    generation.update(mode)
    speculative = speculative_generation(data)
    if speculative and "search" in generation:
        _refuse(result, "search mode", f"{generation['search']} and {speculative['search']} cannot run together")
    elif speculative:
        generation.update(speculative)
    for name, reason in unused_cache_options(generation):
        conv.lose(name, reason)
    if generation:
        config["generation"] = generation
    ignored = ignored_fields(data)
    sampling = bool(gc.do_sample)
    for name, value in data.items():
        if name in METADATA or not is_set(name, value):
            continue
        if name in SEARCH_FIELDS or name in MODEL_CALL_FIELDS:
            if name in ignored:
                conv.lose(name, ignored[name])
            continue
        if name == "top_k" and mode.get("search") == "contrastive_search":
            continue  # contrastive search's candidate count, carried in search_options
        if name in SPECULATIVE_FIELDS:
            if name not in consumed_fields(data):
                conv.lose(name, "transformers reads it from the assistant model's generation config; so does "
                          "logitkit, at generate(assistant_model=...)")
            continue
        if name in REFUSED:
            _refuse(result, name, REFUSED[name])
        elif name in NO_EFFECT:
            conv.lose(name, NO_EFFECT[name])
        elif name in SAMPLING_ONLY and not sampling:
            conv.lose(name, "do_sample is false, so transformers never applies it")
        elif name not in known_fields():
            conv.lose(name, "not a GenerationConfig field logitkit knows; transformers ignores it too")
    if gc.guidance_scale not in (None, 1) and getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        # 5.24's unconditional pass calls the model with input_ids only, which an encoder-decoder rejects.
        _refuse(result, "guidance_scale", "classifier-free guidance runs on decoder-only models only, "
                "as in transformers 5.24 (it fails on encoder-decoders)")
    if sampling and (gc.num_beam_groups or 1) > 1:
        _refuse(result, "do_sample", "diverse (group) beam search cannot sample, as in transformers")
    if (gc.num_beam_groups or 1) > 1:
        conv.note(
            "num_beam_groups",
            "transformers 5 runs group beam search only from the Hub; logitkit runs 4.x's algorithm",
        )
    return result


def _refuse(result: Translation, name: str, reason: str) -> None:
    result.conversion.lose(name, reason)
    result.refused.append(Loss(name, reason))
