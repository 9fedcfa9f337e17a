"""The ``constraint`` finish reason: a row that ends with eos where a processor reports it complete."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from _generation_helpers import demo_codec as codec
from _generation_helpers import demo_model as model

import logitkit
from logitkit import NewRows, Pipeline, Processor, RowState, StepContext
from logitkit.batch import generated_tokens
from logitkit.contract_checks import ProcessorContractError
from logitkit_builtins.selection import Greedy

EOS = 0
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def prompt(rows: int, text: str = "def f():") -> torch.Tensor:
    return torch.tensor([codec().encode(text)]).repeat(rows, 1)


def generate(processors: list[Any], rows: int, **settings: Any) -> logitkit.GenerationOutput:
    pipe = Pipeline.from_config({"processors": processors}, tokenizer=codec().tokenizer)
    return logitkit.generate(model(), prompt(rows), pipe, eos_token_id=EOS, **settings)


def ended_with_eos(out: logitkit.GenerationOutput) -> list[bool]:
    return [EOS in row for row in out.new_tokens.tolist()]


class EndsAfter(Processor):
    """A third-party-style stateful processor: forces eos after ``n`` tokens, and may report the row complete."""

    name = "ends_after"
    mixed_rows = True
    n: ClassVar[int] = 3

    def __init__(self, reports: bool) -> None:
        super().__init__()
        self.reports = reports

    def init_rows(self, rows: NewRows) -> RowState | None:
        return {"count": torch.zeros(rows.count, dtype=torch.int64)}

    def accept(self, state: RowState, tokens: torch.Tensor) -> None:
        state["count"] += 1

    def complete_rows(self, state: RowState) -> torch.Tensor | None:
        return state["count"] >= self.n if self.reports else None

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        state = ctx.row_state(self)
        assert state is not None
        done = (state["count"] >= self.n)[:, None]
        eos_only = torch.full_like(scores, float("-inf"))
        eos_only[:, EOS] = 0.0
        return torch.where(done, eos_only, scores.index_fill(1, torch.tensor([EOS]), float("-inf")))


@pytest.mark.parametrize(("reports", "reason"), [(True, "constraint"), (False, "eos")])
def test_any_processor_can_report_its_row_complete_through_the_state(reports: bool, reason: str) -> None:
    """No constraint name is special-cased: a plugin's ``complete_rows`` alone decides the reason."""
    pipe = Pipeline([EndsAfter(reports)], Greedy())
    out = logitkit.generate(model(), prompt(2), pipe, eos_token_id=EOS, max_new_tokens=8)
    assert out.new_tokens.shape[1] == EndsAfter.n + 1
    assert out.finish_reasons == [reason, reason]


class WrongLength(EndsAfter):
    name = "wrong_length"

    def complete_rows(self, state: RowState) -> torch.Tensor | None:
        return torch.ones(state["count"].shape[0] + 1, dtype=torch.bool)


def test_complete_rows_of_the_wrong_length_is_an_error_naming_the_processor() -> None:
    with pytest.raises(ProcessorContractError, match="wrong_length"):
        logitkit.generate(model(), prompt(2), Pipeline([WrongLength(True)], Greedy()), eos_token_id=EOS, max_new_tokens=4)


def test_a_complete_regex_finishes_with_the_constraint_reason_in_decode() -> None:
    out = generate([{"regex": "(get|set)_[a-z]{1,4}"}, {"temperature": 1.2}], rows=6, seed=3, max_new_tokens=12)
    for finished, reason in zip(ended_with_eos(out), out.finish_reasons, strict=True):
        assert reason == ("constraint" if finished else "length"), out.finish_reasons
    assert "constraint" in out.finish_reasons


def test_a_row_cut_short_by_the_length_limit_is_not_complete() -> None:
    schema = {"type": "object", "properties": {"name": {"type": "string", "minLength": 4}}, "required": ["name"]}
    out = generate([{"json_schema": schema}], rows=2, max_new_tokens=3)
    assert out.finish_reasons == ["length", "length"]


def test_beam_search_reports_the_constraint_reason_per_returned_beam() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 99}},
              "required": ["n"], "additionalProperties": False}  # fmt: skip
    out = generate([{"json_schema": schema}], rows=1, num_beams=3, num_return_sequences=3, max_new_tokens=16)
    assert out.finish_reasons == ["constraint"] * 3, out.finish_reasons
    for row in out.new_tokens.tolist():
        json.loads(codec().decode(row[: row.index(EOS)]))


def test_the_batch_output_cuts_a_constraint_row_at_its_eos() -> None:
    assert generated_tokens([5, 6, EOS, EOS], "constraint", [EOS], EOS) == [5, 6, EOS]


def test_the_cli_finish_line_says_constraint(capsys: pytest.CaptureFixture[str]) -> None:
    from logitkit.cli import main

    config = str(EXAMPLES / "structured-identifier.yaml")
    assert main(["generate", "-c", config, "def "]) == 0
    captured = capsys.readouterr()
    assert re.fullmatch(r"def [a-z_][a-z0-9_]{2,15}", captured.out.strip())
    assert "finish: constraint" in captured.err, captured.err
