"""The output constraints on the fast path's candidate view: behind a truncation they mask the view, not the vocabulary."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
import torch
from _generation_helpers import demo_codec as codec
from _generation_helpers import demo_model as model

import logitkit
from logitkit import EmptyRowError, Pipeline, fastpath
from logitkit_builtins import _llguidance as backend

EOS = 0
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 8}, "n": {"type": "integer", "minimum": 0, "maximum": 99}},
    "required": ["name", "n"],
    "additionalProperties": False,
}
PATTERN = r"[a-z_]{1,8}\([a-z]{0,3}\):\n"  # ends in a newline, after which eos is likely enough to survive top_k


def pipeline(processors: list[Any], **fields: Any) -> Pipeline:
    config = {"order": "listed", "processors": processors, **fields}
    return Pipeline.from_config(config, tokenizer=codec().tokenizer)


def runs(processors: list[Any]) -> list[tuple[int, int]]:
    return fastpath.fused_runs(pipeline(processors).processors)


def test_a_constraint_joins_a_fused_run_only_behind_a_truncation() -> None:
    # In stage order (first), or behind a scaling only, it would force a full sort: it stays dense.
    assert runs([{"json_schema": SCHEMA}, {"temperature": 0.8}, {"top_k": 40}]) == [(1, 3)]
    assert runs([{"temperature": 0.8}, {"regex": PATTERN}, {"top_k": 40}]) == [(2, 3)]
    # Behind top_k the view is complete: the constraint is part of the run, and so is what follows.
    assert runs([{"temperature": 0.8}, {"top_k": 200}, {"regex": PATTERN}, {"top_p": 0.95}]) == [(0, 4)]


def sample(pipe: Pipeline, rows: int, seed: int, text: str = "def f():") -> logitkit.GenerationOutput:
    ids = torch.tensor([codec().encode(text)]).repeat(rows, 1)
    return logitkit.generate(model(), ids, pipe, max_new_tokens=40, eos_token_id=EOS, seed=seed)


@pytest.mark.parametrize(
    ("constraint", "text", "check"),
    [
        ({"json_schema": SCHEMA}, "def f():", lambda text: jsonschema.validate(json.loads(text), SCHEMA)),
        ({"regex": PATTERN}, "def ", lambda text: re.fullmatch(PATTERN, text) or pytest.fail(text)),
    ],
    ids=["json_schema", "regex"],
)
def test_the_view_path_picks_exactly_the_dense_paths_tokens(
    constraint: dict[str, Any], text: str, check: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipe = pipeline([{"temperature": 1.3}, {"top_k": 1000}, constraint, {"top_p": 0.97}])
    dense = sample(pipe.replace(fast_path=False), rows=6, seed=11, text=text)

    # On the fast path the constraint reads the bits of the view's candidates only: it never
    # unpacks the vocabulary-wide mask, and the view is never made dense.
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("densified on the fast path")

    monkeypatch.setattr(backend, "masked_scores", refuse)
    monkeypatch.setattr(fastpath.CandidateView, "densify", refuse)
    fused = sample(pipe, rows=6, seed=11, text=text)
    assert torch.equal(fused.sequences, dense.sequences)
    assert fused.finish_reasons == dense.finish_reasons
    assert "constraint" in fused.finish_reasons
    for row, reason in zip(fused.new_tokens.tolist(), fused.finish_reasons, strict=True):
        if reason == "constraint":
            check(str(codec().decode(row[: row.index(EOS)])))


def test_an_empty_candidate_view_is_the_same_error_naming_the_constraint() -> None:
    # top_k 1 keeps "def"'s likeliest next token, which is no digit: the regex allows nothing left.
    pipe = pipeline([{"top_k": 1}, {"regex": "[0-9]+"}])
    errors = []
    for fast in (True, False):
        with pytest.raises(EmptyRowError, match="regex") as caught:
            sample(pipe.replace(fast_path=fast), rows=2, seed=1)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
