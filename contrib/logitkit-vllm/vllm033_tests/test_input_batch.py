"""vLLM 0.33.0's real InputBatch and Sampler: every registered processor that can run in vLLM, row for row.

Requests join and leave vLLM's ``InputBatch`` (its ``BatchUpdateBuilder``
records the events), it condenses, rows swap, some requests are preempted and
resume, and ``refresh_metadata`` hands the processors their ``BatchUpdate``.
vLLM's ``Sampler`` runs the processors and chooses each token (top_k=1 rows
and seeded random rows). The logits our processor returned for every row at
every step must equal that request's solo logitkit run, fed the tokens vLLM
chose; the processors that cannot run in vLLM are refused with their reason.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch
from logitkit_vllm.requests import server_configs
from logitkit_vllm.testing import SimRequest, solo_rows, step_logits
from logitkit_vllm.v1 import LogitkitLogitsProcessor
from processor_cases import cannot_run_in_vllm, cases
from vllm import SamplingParams
from vllm.config import VllmConfig
from vllm.v1.sample.logits_processor import build_logitsprocs
from vllm.v1.sample.sampler import Sampler
from vllm.v1.worker.gpu_input_batch import CachedRequestState, InputBatch

VOCAB = 97
MAX_REQS = 16


def test_every_processor_either_runs_or_is_refused_with_its_reason() -> None:
    runnable, refused = cases()
    reasons = cannot_run_in_vllm()
    assert set(refused) == set(reasons), {n: refused.get(n) for n in set(refused) ^ set(reasons)}
    for name, message in refused.items():
        assert message.startswith("logitkit config refused:\nextra_args.logitkit: processors[0]: "), message
        assert f"'{name}'" in message and reasons[name] in message, message
    assert len(runnable) >= 35, sorted(runnable)


def greedy_mask(scores: torch.Tensor) -> torch.Tensor:
    out = torch.full_like(scores, float("-inf"))
    best = int(scores.argmax())
    out[best] = scores[best]
    return out


class Run:
    """One InputBatch with vLLM's processors (ours loaded from the entry point) and vLLM's Sampler."""

    def __init__(self) -> None:
        processors = build_logitsprocs(VllmConfig(), torch.device("cpu"), False, False)
        ours = [p for p in processors.all if isinstance(p, LogitkitLogitsProcessor)]
        assert len(ours) == 1  # vLLM's loader found the entry point
        self.processor = ours[0]
        self.returned: list[torch.Tensor] = []
        apply = self.processor.apply

        def spy(logits: torch.Tensor) -> torch.Tensor:
            out = apply(logits)
            self.returned.append(out.clone())
            return out

        self.processor.apply = spy  # type: ignore[method-assign]
        self.batch = InputBatch(
            max_num_reqs=MAX_REQS, max_model_len=256, max_num_batched_tokens=4096, device=torch.device("cpu"),
            vocab_size=VOCAB, block_sizes=[1], max_num_blocks_per_req=[256], logitsprocs=processors,
            logitsprocs_need_output_token_ids=True,
        )  # fmt: skip
        # The CUDA wheel lacks vLLM's CPU sampling kernels (_C.fused_gumbel_argmax, _C.greedy_argmax):
        # fp64 Gumbel noise takes the Sampler's pure-torch path.
        self.sampler = Sampler(use_fp64_gumbel=True)

    def add(self, req: SimRequest) -> None:
        params = req.params
        generator = torch.Generator().manual_seed(int(params.seed))
        self.batch.add_request(
            CachedRequestState(
                req_id=str(req.rid), prompt_token_ids=req.prompt, mm_features=[], sampling_params=params,
                generator=generator, block_ids=([],), num_computed_tokens=len(req.prompt) + len(req.output),
                output_token_ids=req.output,
            )
        )  # fmt: skip

    def step(self, by_id: dict[str, SimRequest]) -> None:
        self.batch.refresh_metadata()
        order = [by_id[r] for r in self.batch.req_ids]
        logits = torch.stack([step_logits(r.rid, len(r.output), VOCAB) for r in order])
        self.returned.clear()
        sampled = self.sampler(logits, self.batch.sampling_metadata).sampled_token_ids[:, 0].tolist()
        returned = self.returned[0] if self.returned else logits  # no config in the batch: not called
        for row, req in enumerate(order):
            req.processed[len(req.output)] = returned[row].clone()
            req.output.append(int(sampled[row]))
            index = self.batch.req_id_to_index[str(req.rid)]
            self.batch.token_ids_cpu[index, self.batch.num_tokens_no_spec[index]] = sampled[row]
            self.batch.num_tokens_no_spec[index] += 1


def drive(requests: list[SimRequest], seed: int) -> int:
    rng = random.Random(seed)
    run = Run()
    waiting = list(requests)
    running: dict[str, SimRequest] = {}
    steps = 0
    while waiting or running:
        for rid, req in list(running.items()):
            if len(req.output) >= req.max_tokens or (req.output and rng.random() < 0.05):
                run.batch.remove_request(rid)
                del running[rid]
                if len(req.output) < req.max_tokens:  # preempted: resumes later with its output
                    waiting.insert(rng.randrange(len(waiting) + 1), req)
        for _ in range(rng.randrange(0, 4)):
            if not waiting or len(running) >= MAX_REQS:
                break
            req = waiting.pop(0)
            run.add(req)
            running[str(req.rid)] = req
        run.batch.condense()
        for _ in range(rng.randrange(0, 3)):
            if run.batch.num_reqs > 1:
                run.batch.swap_states(*rng.sample(range(run.batch.num_reqs), 2))
        if running:
            run.step(running)
            steps += 1
    run.batch.refresh_metadata()  # the last leaves reach the processors
    assert run.processor.rows.tracked == 0  # every row left; nothing kept
    return steps


def make_requests(seed: int) -> list[SimRequest]:
    runnable, _ = cases()
    configs: list[Any] = [None, *runnable.values()]
    gen = torch.Generator().manual_seed(seed)
    requests = []
    for rid in range(len(configs) + 8):
        raw = configs[rid % len(configs)]
        # Greedy rows are top_k=1: vLLM's greedy path on CPU needs its CPU kernel (see Run).
        params = SamplingParams(
            temperature=1.0, top_k=1 if rid % 2 == 0 else 0, seed=700 + rid, max_tokens=64,
            extra_args=None if raw is None else {"logitkit": raw},
        )  # fmt: skip
        prompt = torch.randint(0, VOCAB, (int(torch.randint(1, 10, (1,), generator=gen)),), generator=gen).tolist()
        requests.append(SimRequest(rid, prompt, params, int(torch.randint(3, 12, (1,), generator=gen)), seed=700 + rid))
    return requests


@pytest.mark.parametrize("seed", range(2))
def test_input_batch_and_sampler_rows_match_solo_runs(seed: int) -> None:
    requests = make_requests(seed)
    assert drive(requests, seed) > 0
    for req in requests:
        assert len(req.output) == req.max_tokens
        plan = server_configs().plan(req.params.extra_args)
        expected = (
            [step_logits(req.rid, s, VOCAB) for s in range(req.max_tokens)]
            if plan is None
            else solo_rows(plan.pipeline, req, VOCAB, greedy_mask if plan.greedy else None)
        )
        for step, row in enumerate(expected):
            assert torch.equal(req.processed[step], row), (req.rid, step, req.params.extra_args)
            if req.params.top_k == 1:  # vLLM's top-k sampling took the best of what we returned
                assert req.output[step] == int(row.argmax()), (req.rid, step)
