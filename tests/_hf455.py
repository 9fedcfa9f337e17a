"""The transformers 4.55.4 reference fixtures (tests/fixtures/hf455): loading, models, and running a case here.

A case is run the way a user would: its GenerationConfig fields go through
``logitkit convert``'s translation (processors, ``generation:``, tokens) and
``logitkit.formats.hf_search_modes``, which it calls for the 4.x decoding mode, and
``logitkit.generate`` gets the pipeline with no settings repeated as keywords.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import torch

import logitkit
from logitkit.formats.generation_config import from_generation_config

FIXTURES = Path(__file__).parent / "fixtures" / "hf455"
sys.path.insert(0, str(FIXTURES))
from seeded_models import MODELS, weights_checksum  # noqa: E402


@cache
def document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "outputs.json").read_text())
    return data


def cases(prefix: str) -> list[dict[str, Any]]:
    return [c for c in document()["cases"] if c["name"].startswith(prefix)]


def case_id(case: dict[str, Any]) -> str:
    return f"{case['name']}-{case['model']}"


@cache
def model(name: str) -> Any:
    return MODELS[name]()


def checked_model(case: dict[str, Any]) -> Any:
    """The case's model, after checking that this venv builds the weights 4.55.4 ran with."""
    built = model(case["model"])
    assert weights_checksum(built) == case["weights_sha256"], "seeded weights differ from the fixture's"
    return built


def gc_fields(case: dict[str, Any]) -> dict[str, Any]:
    fields = dict(case["generation_config"])
    if case.get("constraints"):
        # The config-file form of PhrasalConstraint / DisjunctiveConstraint objects.
        fields["constraints"] = [{kind: ids} for kind, ids in case["constraints"]]
    return fields


def pipeline_for(case: dict[str, Any]) -> logitkit.Pipeline:
    conversion = from_generation_config(gc_fields(case))
    # Only bookkeeping may be left behind; every field that changes the output is carried.
    assert {loss.parameter for loss in conversion.lost} <= {"return_dict_in_generate"}, conversion.report()
    return logitkit.Pipeline.from_config(conversion.value)


def run(case: dict[str, Any]) -> logitkit.GenerationOutput:
    built = checked_model(case)
    ids = torch.tensor(case["input_ids"])
    mask = torch.tensor(case["attention_mask"])
    return logitkit.generate(built, ids, pipeline_for(case), attention_mask=mask)
