"""Determinism: the same config and seeds give the same tokens, across runs and across batch composition.

Each row carries its own seed, and the sampler's noise is keyed on (seed, step,
token id), so a row draws the same tokens whether it runs alone, with two
other rows, or in a batch of eight in another order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch

import logitkit
from logitkit import Pipeline

VOCAB = 40
ROWS = 8
SEEDS = torch.tensor([11, 7, 2024, 5, 99, 123456789, 3, 42], dtype=torch.int64)
#: Batches to compare against the full batch in order: alone, three rows out of order, all eight shuffled.
BATCHES: list[list[int]] = [[r] for r in range(ROWS)] + [
    [6, 1, 4],
    [2, 7, 0],
    [5, 3, 7, 0, 6, 2, 1, 4],
]

CHAINS: dict[str, Any] = {
    "sample": [{"temperature": 0.9}, {"top_k": 20}, {"top_p": 0.95}, {"min_p": 0.02}],
    "penalised": {
        "tokens": {"eos": [1]},
        "processors": [
            {"repetition_penalty": 1.3},
            {"no_repeat_ngram_size": 2},
            {"min_new_tokens": 4},
            {"temperature": 1.1},
            {"typical_p": 0.9},
            {"eta_cutoff": 0.001},
        ],
    },
    "hot": [{"temperature": 1.8}],
    "multinomial_free": [{"temperature": 1.0}, {"top_h": 0.9}],
}


def fake_logits(ids: torch.Tensor) -> torch.Tensor:
    """A row-independent stand-in for a model: each row's logits depend only on that row's tokens."""
    table = torch.randn(VOCAB, VOCAB, generator=torch.Generator().manual_seed(0)) * 2.5
    position = torch.arange(ids.shape[1], dtype=torch.float32)
    weights = torch.softmax(position / 2, dim=0)  # the recent tokens weigh most
    return torch.einsum("t,btv->bv", weights, table[ids])


def prompts() -> torch.Tensor:
    return torch.randint(2, VOCAB, (ROWS, 5), generator=torch.Generator().manual_seed(1))


def decode(chain: Any, rows: Sequence[int], steps: int = 10) -> torch.Tensor:
    """Decode ``rows`` of the prompts with next_tokens; returns the new tokens in the given row order."""
    ids = prompts()[list(rows)]
    pipe = Pipeline.from_config(chain, seeds=SEEDS[list(rows)])
    for _ in range(steps):
        tokens = pipe.next_tokens(ids, fake_logits(ids))
        ids = torch.cat([ids, tokens.unsqueeze(-1)], dim=-1)
    return ids[:, -steps:]


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_next_tokens_are_the_same_across_runs_and_batch_composition(chain: str) -> None:
    reference = decode(CHAINS[chain], range(ROWS))
    assert torch.equal(decode(CHAINS[chain], range(ROWS)), reference), "a second run differs"
    # The draws are really random: rows with different seeds do not all agree with greedy decoding.
    greedy = decode([], range(ROWS))
    assert not torch.equal(reference, greedy)
    for rows in BATCHES:
        assert torch.equal(decode(CHAINS[chain], rows), reference[rows]), f"rows {rows}"


def test_the_seed_decides_the_draw() -> None:
    ids = prompts()
    outcomes = set()
    for seed in range(8):
        pipe = Pipeline.from_config([{"temperature": 2.0}], seeds=torch.full((ROWS,), seed))
        outcomes.add(tuple(pipe.next_tokens(ids, fake_logits(ids)).tolist()))
    assert len(outcomes) > 1


def callable_model(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    return fake_logits(input_ids)


def generated(
    model: Any, prompt_ids: torch.Tensor, rows: Sequence[int], config: Any, **settings: Any
) -> torch.Tensor:
    out = logitkit.generate(
        model, prompt_ids[list(rows)], config, seeds=SEEDS[list(rows)], max_new_tokens=8, **settings
    )
    return out.new_tokens


def until_eos(tokens: torch.Tensor, eos: int = 1) -> list[list[int]]:
    """Each row up to its first eos: a finished row is padded in a batch but stops early when alone."""
    rows = []
    for row in tokens.tolist():
        rows.append(row[: row.index(eos) + 1] if eos in row else row)
    return rows


@pytest.mark.parametrize("chain", ["sample", "penalised"])
def test_generate_is_the_same_across_runs_and_batch_composition(chain: str) -> None:
    ids = prompts()
    reference = until_eos(generated(callable_model, ids, range(ROWS), CHAINS[chain]))
    assert until_eos(generated(callable_model, ids, range(ROWS), CHAINS[chain])) == reference
    for rows in BATCHES:
        got = until_eos(generated(callable_model, ids, rows, CHAINS[chain]))
        assert got == [reference[r] for r in rows], f"rows {rows}"


def test_generate_with_a_transformers_model_is_batch_invariant() -> None:
    """A tiny GPT-2 with equal-length prompts: batch size 1, 3 and 8 in different orders give the same tokens."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64)
    ).eval()
    ids = prompts()
    config = {"processors": [{"temperature": 1.5}, {"top_k": 30}], "tokens": {"pad": 0}}
    reference = generated(model, ids, range(ROWS), config)
    assert torch.equal(generated(model, ids, range(ROWS), config), reference)
    for rows in ([3], [6, 1, 4], [5, 3, 7, 0, 6, 2, 1, 4]):
        assert torch.equal(generated(model, ids, rows, config), reference[rows]), f"rows {rows}"


def test_the_generation_seed_setting_repeats_a_run() -> None:
    ids = prompts()[:3]
    config = {
        "processors": [{"temperature": 1.5}],
        "generation": {"seed": 1234, "max_new_tokens": 8},
    }
    first = logitkit.generate(callable_model, ids, config).new_tokens
    second = logitkit.generate(callable_model, ids, config).new_tokens
    other = logitkit.generate(callable_model, ids, config, seed=4321).new_tokens
    assert torch.equal(first, second)
    assert not torch.equal(first, other)
