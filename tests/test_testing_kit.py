"""The plugin author's kit catches each kind of contract break, and passes well-behaved processors."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings

from logitkit import Processor, Stage, StepContext
from logitkit.registry import Registry
from logitkit.testing import (
    ContractViolation,
    check_processor_contract,
    check_selector_contract,
    contract_cases,
    logits,
    step_cases,
)


class Mutates(Processor):
    name = "mutates"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        scores[..., 0] = 0.0
        return scores


class Upcasts(Processor):
    name = "upcasts"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores.double()


class BatchMean(Processor):
    """Subtracts the batch mean: row results depend on the other rows."""

    name = "batch_mean"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        finite = torch.where(torch.isfinite(scores), scores, 0.0)
        return scores - finite.mean()


class MakesNan(Processor):
    name = "makes_nan"

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return scores * float("nan")


class DropsAll(Processor):
    name = "drops_all"
    stage = Stage.TRUNCATION

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return torch.full_like(scores, float("-inf"))


class FlipsArgmax(Processor):
    name = "flips_argmax"
    argmax_invariant = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return -scores


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (Mutates, "modified its input scores"),
        (Upcasts, "expected"),
        (BatchMean, "rows are not independent"),
        (MakesNan, "produced NaN"),
        (DropsAll, "min_tokens_to_keep"),
        (FlipsArgmax, "argmax_invariant"),
    ],
)
def test_each_break_is_caught(cls: type[Processor], message: str) -> None:
    with pytest.raises(ContractViolation, match=message):
        check_processor_contract(cls, examples=30, shrink=False)


def test_builtins_pass(reg: Registry) -> None:
    for name, config in (
        ("temperature", {"temperature": 0.7}),
        ("top_k", {"top_k": 3}),
        ("top_p", {"top_p": 0.8}),
    ):
        check_processor_contract(reg.processors[name].cls, config, examples=10)
    check_selector_contract(reg.selectors["sample"].cls, {"seed": 1}, examples=10)


def test_contract_cases_cover_a_plugin(reg: Registry) -> None:
    names = {name for _, name, _, _ in contract_cases("builtins", registry=reg)}
    assert {"dry", "xtc", "mirostat", "mirostat_v2", "logit_bias"} <= names
    assert contract_cases("no_such_plugin", registry=reg) == []


@settings(max_examples=30, deadline=None)
@given(scores=logits(dtypes=(torch.float16,), vocab=(3, 8)))
def test_logits_strategy_shapes_and_finiteness(scores: torch.Tensor) -> None:
    assert scores.dtype == torch.float16 and 3 <= scores.shape[-1] <= 8
    assert not bool(torch.isnan(scores).any()) and not bool(torch.isposinf(scores).any())
    assert bool(torch.isfinite(scores).any(dim=-1).all())


@settings(max_examples=30, deadline=None)
@given(case=step_cases(vocab=(5, 9), length=(2, 6)))
def test_step_cases_have_valid_histories(case) -> None:
    assert (
        case.input_ids.shape[0] == case.batch_size and int(case.input_ids.max()) < case.vocab_size
    )
    assert 1 <= case.prompt_length <= case.input_ids.shape[-1]
    assert len(set(case.seeds.tolist())) == case.batch_size


def test_pytest_plugin_fixtures(processor_contract, selector_contract) -> None:
    assert (
        processor_contract is check_processor_contract
        and selector_contract is check_selector_contract
    )
