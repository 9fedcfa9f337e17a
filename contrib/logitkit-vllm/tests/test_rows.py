"""ConfigRows under a simulated vLLM persistent batch: every row equals its solo logitkit run.

These need no vLLM; the same checks with vLLM's own classes live in vllm_tests/.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from logitkit_vllm import ConfigRows, RequestConfigs, ServerPolicy
from logitkit_vllm.testing import Added, Moved, SimRequest, run_batch, solo_rows

VOCAB = 64

#: Mixed configs: stateless, history-reading, stateful (xtc keeps a seed per row), greedy, by preset, none.
CONFIGS: list[Any] = [
    None,
    {"processors": [{"temperature": 0.7}, {"top_k": 20}, {"top_p": 0.9}, {"min_p": 0.02}]},
    json.dumps({"processors": [{"repetition_penalty": 1.3}, {"no_repeat_ngram_size": 2}]}),
    "combined",
    {"processors": [{"name": "xtc", "probability": 0.6, "threshold": 0.02}]},
    {"processors": [{"repetition_penalty": 1.5}], "selector": "greedy"},
    {"processors": [{"name": "dry", "multiplier": 0.8}, {"temperature": 1.2}]},
]


class RowsSink:
    """What the V1 processor does with vLLM's events, without vLLM."""

    def __init__(self, configs: RequestConfigs) -> None:
        self.configs = configs
        self.rows = ConfigRows()

    def update(self, removed: list[int], added: list[Added], moved: list[Moved], batch_size: int) -> None:
        for index in removed:
            self.rows.remove(index)
        for index, params, prompt, output in added:
            self.rows.add(index, self.configs.plan(params.extra_args), prompt, output, params.seed)
        for source, target, swap in moved:
            self.rows.move(source, target, swap=swap)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        return self.rows.apply(logits)


def make_requests(count: int, seed: int) -> list[SimRequest]:
    gen = torch.Generator().manual_seed(seed)
    requests = []
    for rid in range(count):
        config = CONFIGS[rid % len(CONFIGS)]
        prompt = torch.randint(0, VOCAB, (int(torch.randint(2, 9, (1,), generator=gen)),), generator=gen).tolist()
        extra = None if config is None else {"logitkit": config}
        request_seed = 1000 + rid
        params = SimpleNamespace(extra_args=extra, seed=request_seed)
        requests.append(SimRequest(rid, prompt, params, max_tokens=int(torch.randint(3, 14, (1,), generator=gen)), seed=request_seed))
    return requests


def greedy_mask(scores: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(scores, float("-inf"))
    best = int(scores.argmax())
    out[best] = scores[best]
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_every_row_equals_its_solo_run(seed: int) -> None:
    configs = RequestConfigs(ServerPolicy())
    requests = make_requests(40, seed)
    steps = run_batch(requests, RowsSink(configs), vocab=VOCAB, max_batch=9, seed=seed)
    assert steps > 10
    for req in requests:
        assert len(req.output) == req.max_tokens
        plan = configs.plan(req.params.extra_args)
        if plan is None:  # untouched by the adapter: vLLM's logits as they were
            expected = solo_rows(_identity_pipeline(), req, VOCAB)
        else:
            expected = solo_rows(plan.pipeline, req, VOCAB, greedy_mask if plan.greedy else None)
        for step, row in enumerate(expected):
            assert torch.equal(req.processed[step], row), (req.rid, step, req.params.extra_args)


def _identity_pipeline() -> Any:
    from logitkit import Pipeline

    return Pipeline([])


def test_rows_without_a_config_are_not_tracked() -> None:
    rows = ConfigRows()
    configs = RequestConfigs(ServerPolicy())
    rows.add(0, configs.plan(None), [1, 2], [], None)
    rows.add(1, configs.plan({}), [1, 2], [], None)
    assert rows.tracked == 0
    logits = torch.randn(2, VOCAB)
    assert rows.apply(logits) is logits


def test_identical_configs_share_one_state() -> None:
    configs = RequestConfigs(ServerPolicy())
    rows = ConfigRows()
    for index in range(4):
        rows.add(index, configs.plan({"logitkit": "combined"}), [1, 2, 3], [], None)
    rows.add(4, configs.plan({"logitkit": "chat"}), [1], [], None)
    assert rows.tracked == 5
    assert sorted(g.state.rows for g in rows._groups.values()) == [1, 4]


def test_row_of_maps_tracked_indices_to_rows_of_the_step() -> None:
    # Model Runner V2 tracks slots and reorders rows: tracked slots 5 and 2 sit at rows 0 and 1 this step.
    configs = RequestConfigs(ServerPolicy())
    plan = configs.plan({"logitkit": {"processors": [{"repetition_penalty": 2.0}]}})
    rows = ConfigRows()
    rows.add(5, plan, [1, 2], [], None)
    rows.add(2, plan, [3], [], None)
    logits = torch.ones(2, 8)
    out = rows.apply(logits.clone(), {5: 0, 2: 1})
    assert out[0, 1] == 0.5 and out[0, 2] == 0.5 and out[0, 3] == 1.0  # slot 5's prompt tokens 1, 2 penalized
    assert out[1, 3] == 0.5 and out[1, 1] == 1.0  # slot 2's prompt token 3 only
