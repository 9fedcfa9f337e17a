"""A search strategy declares its own options (``strategy.Config``); the config validates them."""

from __future__ import annotations

import pytest
import torch
from _generation_helpers import tiny_llama
from pydantic import BaseModel, Field

import logitkit
from logitkit import ConfigError
from logitkit.config import resolve
from logitkit.decoding import DecodingJob, GenerationOutput
from logitkit.registry import Registry


class WidthOptions(BaseModel):
    steps: int = Field(default=2, ge=1)


def fixed(job: DecodingJob) -> GenerationOutput:
    options = WidthOptions.model_validate(job.settings.search_options)
    state = job.start(expand=1)
    logits = state.logits
    for _ in range(options.steps):
        tokens, _ = job.choose(logits, job.context(state, state.sequences), keep_scores=False)
        state.rows.accept(tokens)  # the rows' state (steps, stateful processors) moves on
        state.append(tokens)
        logits = job.runner.advance(state.sequences, state.attention_mask)
    return GenerationOutput(state.sequences.clone(), ["length"] * job.batch_size, job.prompt_length)


fixed.Config = WidthOptions  # type: ignore[attr-defined]


def plain(job: DecodingJob) -> GenerationOutput:
    raise AssertionError("never run")


class Strategies:
    @logitkit.hookimpl
    def register_search_strategies(self, register):  # type: ignore[no-untyped-def]
        register("fixed", fixed, "steps tokens")
        register("plain", plain, "no options")


@pytest.fixture
def strategies(make_registry) -> Registry:  # type: ignore[no-untyped-def]
    return make_registry(inline={"strategies": Strategies()})


def test_options_are_validated_against_the_strategy_config(strategies: Registry) -> None:
    with pytest.raises(ConfigError) as info:
        resolve({"generation": {"search": "fixed", "search_options": {"steps": 0}}}, registry=strategies)
    assert "generation.search_options.steps: must be >= 1 (got 0)" in str(info.value)
    with pytest.raises(ConfigError, match="search strategy 'plain' takes no options"):
        resolve({"generation": {"search": "plain", "search_options": {"steps": 3}}}, registry=strategies)
    with pytest.raises(ConfigError, match=r"set generation\.search to the strategy these options are for"):
        resolve({"generation": {"search_options": {"steps": 3}}}, registry=strategies)


def test_the_strategy_reads_its_options(strategies: Registry) -> None:
    pipe = logitkit.Pipeline.from_config(
        {"generation": {"search": "fixed", "search_options": {"steps": 5}}}, registry=strategies
    )
    out = logitkit.generate(tiny_llama(), torch.tensor([[1, 2, 3]]), pipe, eos_token_id=0)
    assert out.new_tokens.shape == (1, 5)
