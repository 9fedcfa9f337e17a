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
    NO_EFFECT,
    NOT_CARRIED_YET,
    SAMPLING_ONLY,
    is_set,
    known_fields,
)
from logitkit.formats.hf_processors import to_config

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
    return section


def translate(
    gc: GenerationConfig,
    *,
    input_ids_seq_length: int | None = None,
    encoder_input_ids: Any = None,
    model: Any = None,
    selector: SamplingSelector = "multinomial",
) -> Translation:
    """The whole logitkit config for ``gc``; see the module docstring."""
    data = fields_of(gc)
    config = to_config(
        gc, input_ids_seq_length=input_ids_seq_length, encoder_input_ids=encoder_input_ids, model=model
    )
    if gc.do_sample:
        config["selector"] = selector
    generation = generation_section(gc, data)
    if generation:
        config["generation"] = generation
    result = Translation(Conversion(config))
    conv = result.conversion
    sampling = bool(gc.do_sample)
    for name, value in data.items():
        if name in METADATA or not is_set(name, value):
            continue
        if name in NOT_CARRIED_YET:
            _refuse(result, name, NOT_CARRIED_YET[name])
        elif name in NO_EFFECT:
            conv.lose(name, NO_EFFECT[name])
        elif name in SAMPLING_ONLY and not sampling:
            conv.lose(name, "do_sample is false, so transformers never applies it")
        elif name == "decoder_start_token_id" and not isinstance(value, int):
            _refuse(result, name, "a per-row decoder start is not available yet (issue 13, engineer work in progress)")
        elif name not in known_fields():
            conv.lose(name, "not a GenerationConfig field logitkit knows; transformers ignores it too")
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
