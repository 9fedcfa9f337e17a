"""A call on its own (``pipe(ids, scores)``, ``next_tokens``) skips the batch state only where the
state would hold nothing but the seeds the elements read from the context anyway."""

from __future__ import annotations

import pytest
import torch

from logitkit import Pipeline

VOCAB = 300


def _rows(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (4, 9), generator=gen), torch.randn(4, VOCAB, generator=gen) * 3


@pytest.mark.parametrize(
    "config",
    [
        {"processors": [{"top_k": 40}], "selector": {"sample": 5}},
        {"processors": [{"name": "xtc", "probability": 0.5, "threshold": 0.05}, {"top_p": 0.9}]},
        {"processors": [{"name": "xtc", "probability": 0.5, "threshold": 0.05, "seed": 3}]},
    ],
)
@pytest.mark.parametrize("prompt_length", [None, 6])
def test_seed_only_state_is_skipped_with_the_same_tokens(config: dict[str, object], prompt_length: int | None) -> None:
    context: dict[str, object] = {"seeds": torch.tensor([1, -1, 7, 9])}
    if prompt_length is not None:
        context["prompt_length"] = prompt_length
    pipe = Pipeline.from_config(config, **context)
    assert pipe.stateful and not pipe.needs_state_alone
    ids, scores = _rows(1)
    length = ids.shape[-1]
    prompt = prompt_length or length
    for step in range(3):
        torch.manual_seed(step)  # the row without a seed draws one from torch's RNG either way
        alone = pipe.next_tokens(ids, scores)
        torch.manual_seed(step)
        state = pipe.start(ids, prompt_length=length, steps=length - prompt)
        assert torch.equal(alone, pipe.choose(scores, state.context(ids)))


def test_state_beyond_the_seeds_is_still_built() -> None:
    pipe = Pipeline.from_config({"processors": [], "selector": {"name": "mirostat_v2", "tau": 3.0, "seed": 2}})
    assert pipe.needs_state_alone


@pytest.mark.parametrize("prompt_length", [None, 0, 6, 9])
def test_a_call_on_its_own_records_the_facts_its_context_would_find(prompt_length: int | None) -> None:
    # step_context builds every row alike and records so (sparing host syncs); the record must
    # be what measuring the same tensors finds.
    context: dict[str, object] = {} if prompt_length is None else {"prompt_length": prompt_length}
    pipe = Pipeline.from_config([{"top_k": 40}], **context)
    ids, _ = _rows(2)
    built = pipe.step_context(ids)
    measured = type(built)(input_ids=ids, prompt_lengths=built.prompt_lengths.clone(), steps=built.steps.clone())
    for fact in ("step_list", "same_step", "aligned", "uniform"):
        assert getattr(built, fact) == getattr(measured, fact), fact
    assert built.same_step == ids.shape[-1] - (prompt_length if prompt_length is not None else ids.shape[-1])
    # Overriding the per-row tensors leaves the facts to be measured.
    mixed = pipe.step_context(ids, steps=torch.tensor([0, 1, 2, 3]))
    assert mixed.same_step is None and not mixed.uniform
