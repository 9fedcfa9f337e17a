"""The Model Runner V2 class through vLLM's real ``LogitsContext`` with recycled slots.

Model Runner V2 needs Triton, so on CPU the runner itself does not run: this
drives the V2 processor the way the runner does. Requests take slots from a
free list (last freed, first reused, as ``RequestState`` does), their tokens
sit in per-slot buffers, rows come in a new order every step, a request may
sit a step out, be preempted and resume in another slot, and no call tells the
processor a request left. Every row must equal its solo logitkit run.
"""

from __future__ import annotations

import random
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from logitkit_vllm import entry
from logitkit_vllm.requests import server_configs
from logitkit_vllm.testing import SimRequest, solo_rows, step_logits
from logitkit_vllm.v1 import LogitkitLogitsProcessor
from logitkit_vllm.v2 import LogitkitLogitsProcessorV2
from vllm import SamplingParams
from vllm.v1.worker.gpu.sample.logits_processor import LogitsContext, LogitsProcRequestState
from vllm.v1.worker.gpu.sample.logits_processor.loader import _load_v2_logitsprocs_plugins
from vllm_helpers import CONFIGS

VOCAB = 97
SLOTS = 6
MAX_LEN = 64


class SlotBuffers:
    """The runner's per-slot buffers as the processor reads them (``.gpu`` on the device, ``.np`` on the host)."""

    def __init__(self) -> None:
        self.tokens = torch.zeros((SLOTS, MAX_LEN), dtype=torch.int32)
        self.total = torch.zeros(SLOTS, dtype=torch.int32)
        self.prompt = np.zeros(SLOTS, dtype=np.int32)
        self.prefill = np.zeros(SLOTS, dtype=np.int32)
        self.state = LogitsProcRequestState(
            device=torch.device("cpu"),
            max_num_reqs=SLOTS,
            vocab_size=VOCAB,
            all_token_ids=SimpleNamespace(gpu=self.tokens),  # type: ignore[arg-type]
            prompt_len=SimpleNamespace(np=self.prompt, gpu=torch.from_numpy(self.prompt)),  # type: ignore[arg-type]
            prefill_len=SimpleNamespace(np=self.prefill, gpu=torch.from_numpy(self.prefill)),  # type: ignore[arg-type]
            total_len=SimpleNamespace(gpu=self.total),  # type: ignore[arg-type]
        )

    def fill(self, slot: int, req: SimRequest) -> None:
        history = req.prompt + req.output
        self.tokens[slot, : len(history)] = torch.tensor(history, dtype=torch.int32)
        self.prompt[slot], self.prefill[slot], self.total[slot] = len(req.prompt), len(history), len(history)

    def commit(self, slot: int, token: int) -> None:
        self.tokens[slot, int(self.total[slot])] = token
        self.total[slot] += 1


def context(slots: list[int], buffers: SlotBuffers) -> LogitsContext:
    mapping = torch.tensor(slots, dtype=torch.int32)
    totals = buffers.total[mapping.long()]
    return LogitsContext(
        expanded_idx_mapping=mapping,
        idx_mapping=mapping,
        idx_mapping_np=np.array(slots, dtype=np.int32),
        expanded_local_pos=torch.zeros(len(slots), dtype=torch.int32),
        input_ids=buffers.tokens[mapping.long(), (totals - 1).long()],
        pos=totals - 1,
        seq_lens_upper_bound_np=totals.numpy().copy(),
    )


def run_v2(requests: list[SimRequest], processor: LogitkitLogitsProcessorV2, buffers: SlotBuffers, seed: int) -> set[int]:
    """Decode every request the way Model Runner V2 schedules it; returns the slots that served two requests or more."""
    rng = random.Random(seed)
    free = list(range(SLOTS))
    running: dict[int, SimRequest] = {}  # slot -> request
    waiting = list(requests)
    served: dict[int, set[int]] = {}
    while waiting or running:
        for slot, req in list(running.items()):
            if len(req.output) >= req.max_tokens:
                del running[slot]
                free.append(slot)  # no call to the processor: the slot is simply free again
            elif req.output and rng.random() < 0.05:  # preempted: resumes later, probably in another slot
                del running[slot]
                free.append(slot)
                waiting.insert(rng.randrange(len(waiting) + 1), req)
        for _ in range(rng.randrange(0, 3)):
            if not waiting or not free:
                break
            req, slot = waiting.pop(0), free.pop()
            buffers.fill(slot, req)
            processor.add_request(slot, req.params)
            running[slot] = req
            served.setdefault(slot, set()).add(req.rid)
        scheduled = [s for s in running if rng.random() > 0.1]  # a row may sit a step out
        if not scheduled:
            continue
        rng.shuffle(scheduled)  # V2 reorders rows every step
        live = [running[s] for s in scheduled]
        logits = torch.stack([step_logits(r.rid, len(r.output), VOCAB) for r in live])
        out = processor.apply(logits.clone(), context(scheduled, buffers))
        for row, (slot, req) in enumerate(zip(scheduled, live, strict=True)):
            req.processed[len(req.output)] = out[row].clone()
            draw = torch.Generator().manual_seed(req.rid * 7919 + len(req.output))
            token = int(torch.multinomial(torch.softmax(out[row], -1), 1, generator=draw))
            req.output.append(token)
            buffers.commit(slot, token)
    return {slot for slot, rids in served.items() if len(rids) > 1}


def greedy_mask(scores: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(scores, float("-inf"))
    best = int(scores.argmax())
    out[best] = scores[best]
    return out


def make_requests(seed: int, configs: list[Any], count: int) -> list[SimRequest]:
    gen = torch.Generator().manual_seed(seed)
    requests = []
    for rid in range(count):
        raw = configs[rid % len(configs)]
        params = SamplingParams(seed=900 + rid, extra_args=None if raw is None else {"logitkit": raw})
        LogitkitLogitsProcessorV2.validate_params(params)
        prompt = torch.randint(0, VOCAB, (int(torch.randint(1, 10, (1,), generator=gen)),), generator=gen).tolist()
        requests.append(SimRequest(rid, prompt, params, int(torch.randint(2, 14, (1,), generator=gen)), seed=900 + rid))
    return requests


def assert_rows_equal_solo_runs(requests: list[SimRequest]) -> None:
    for req in requests:
        assert len(req.processed) == req.max_tokens
        plan = server_configs().plan(req.params.extra_args)
        if plan is None:  # untouched
            for step in range(req.max_tokens):
                assert torch.equal(req.processed[step], step_logits(req.rid, step, VOCAB))
            continue
        expected = solo_rows(plan.pipeline, req, VOCAB, greedy_mask if plan.greedy else None)
        for step, row in enumerate(expected):
            assert torch.equal(req.processed[step], row), (req.rid, step, req.params.extra_args)


@pytest.mark.parametrize("seed", range(3))
def test_recycled_slots_reordered_rows_match_solo_runs(seed: int) -> None:
    buffers = SlotBuffers()
    processor = LogitkitLogitsProcessorV2(None, buffers.state)  # type: ignore[arg-type]
    requests = make_requests(seed, CONFIGS, 40)
    recycled = run_v2(requests, processor, buffers, seed)
    assert len(recycled) >= SLOTS // 2  # slots were reused by new requests
    assert_rows_equal_solo_runs(requests)


def test_a_request_without_config_is_declined() -> None:
    buffers = SlotBuffers()
    processor = LogitkitLogitsProcessorV2(None, buffers.state)  # type: ignore[arg-type]
    assert processor.add_request(0, SamplingParams()) is False
    assert processor.add_request(1, SamplingParams(extra_args={"logitkit": "combined"})) is True
    assert processor.add_request(1, SamplingParams()) is False  # the slot's new request has none


def test_the_entry_point_resolves_to_the_v2_class_under_model_runner_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_USE_V2_MODEL_RUNNER", "1")
    assert entry.LogitkitProcessor is LogitkitLogitsProcessorV2
    assert LogitkitLogitsProcessorV2 in _load_v2_logitsprocs_plugins()  # V2's loader type-checks and accepts it
    monkeypatch.setenv("VLLM_USE_V2_MODEL_RUNNER", "0")
    assert entry.LogitkitProcessor is LogitkitLogitsProcessor
    with pytest.raises(ValueError, match="not a subclass"):
        _load_v2_logitsprocs_plugins()  # the V1 class is what V2's loader refuses: hence one entry, resolved per runner


def test_the_entry_follows_the_engine_config_of_its_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    from vllm.config import VllmConfig

    monkeypatch.delenv("VLLM_USE_V2_MODEL_RUNNER", raising=False)  # vLLM decides (V2 by default on GPUs with Triton)

    class Loader:
        """Stands for vLLM's InputProcessor or model runner: it keeps the engine's config and loads the entry."""

        def __init__(self, config: VllmConfig) -> None:
            self.vllm_config = config

        def load(self) -> Any:
            return entry.LogitkitProcessor

    config = VllmConfig()
    assert not config.use_v2_model_runner  # on CPU: no Triton, the V1 runner
    assert Loader(config).load() is LogitkitLogitsProcessor
    monkeypatch.setattr(VllmConfig, "use_v2_model_runner", property(lambda self: True))  # what a GPU engine decides
    assert Loader(config).load() is LogitkitLogitsProcessorV2
