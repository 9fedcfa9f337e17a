"""The V1 processor under vLLM's own BatchUpdateBuilder/BatchUpdate: every row equals its solo logitkit run."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch
from logitkit_vllm.requests import server_configs
from logitkit_vllm.testing import Added, Moved, SimRequest, run_batch, solo_rows
from logitkit_vllm.v1 import LogitkitLogitsProcessor
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdateBuilder, MoveDirectionality
from vllm.v1.sample.logits_processor import _load_logitsprocs_plugins as load_vllm_plugins
from vllm_helpers import CONFIGS

VOCAB = 97


class VllmSink:
    """vLLM's side: events recorded in a BatchUpdateBuilder, handed over as one BatchUpdate per step."""

    def __init__(self) -> None:
        self.processor = LogitkitLogitsProcessor(None, torch.device("cpu"), False)  # type: ignore[arg-type]
        self.builder = BatchUpdateBuilder()

    def update(self, removed: list[int], added: list[Added], moved: list[Moved], batch_size: int) -> None:
        for index in removed:
            self.builder.removed_append(index)
        self.builder.added.extend(added)
        for source, target, swap in moved:
            direction = MoveDirectionality.SWAP if swap else MoveDirectionality.UNIDIRECTIONAL
            self.builder.moved.append((source, target, direction))
        self.processor.update_state(self.builder.get_and_reset(batch_size))

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        return self.processor.apply(logits)


def greedy_mask(scores: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(scores, float("-inf"))
    best = int(scores.argmax())
    out[best] = scores[best]
    return out


@pytest.mark.parametrize("seed", range(4))
def test_random_adds_removes_moves_match_solo_runs(seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    requests = []
    for rid in range(48):
        raw = CONFIGS[rid % len(CONFIGS)]
        params = SamplingParams(seed=500 + rid, extra_args=None if raw is None else {"logitkit": raw})
        LogitkitLogitsProcessor.validate_params(params)
        prompt = torch.randint(0, VOCAB, (int(torch.randint(1, 12, (1,), generator=gen)),), generator=gen).tolist()
        requests.append(SimRequest(rid, prompt, params, int(torch.randint(2, 16, (1,), generator=gen)), seed=500 + rid))
    sink = VllmSink()
    run_batch(requests, sink, vocab=VOCAB, max_batch=12, seed=seed)
    assert sink.processor.rows.tracked == 0  # every row left; nothing kept
    for req in requests:
        plan = server_configs().plan(req.params.extra_args)
        if plan is None:
            for step in range(len(req.output)):
                from logitkit_vllm.testing import step_logits

                assert torch.equal(req.processed[step], step_logits(req.rid, step, VOCAB))
            continue
        expected = solo_rows(plan.pipeline, req, VOCAB, greedy_mask if plan.greedy else None)
        assert len(expected) == req.max_tokens
        for step, row in enumerate(expected):
            assert torch.equal(req.processed[step], row), (req.rid, step, req.params.extra_args)


def test_bad_config_is_refused_at_admission() -> None:
    with pytest.raises(ValueError, match=r"extra_args.logitkit: processors\[0\]"):
        LogitkitLogitsProcessor.validate_params(SamplingParams(extra_args={"logitkit": '{"processors": [{"top_p": 7}]}'}))
    LogitkitLogitsProcessor.validate_params(SamplingParams())  # no config: nothing to check


def test_one_entry_point_resolves_to_the_v1_class() -> None:
    entries = importlib.metadata.entry_points(group="vllm.logits_processors")
    ours = [e for e in entries if e.value.startswith("logitkit_vllm")]
    assert len(ours) == 1
    assert ours[0].load() is LogitkitLogitsProcessor
    assert LogitkitLogitsProcessor in load_vllm_plugins()  # what vLLM's V1 loader finds
