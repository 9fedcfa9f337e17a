"""vLLM's own fake-batch generator (its sdist's tests/v1/logits_processors/test_correctness.py) drives the adapter.

``_generate_fake_step_update`` is what vLLM tests its own logits processors
with: random adds into removed slots and at the end, condensing moves and
random swaps, recorded in a ``BatchUpdateBuilder``. Here it moves requests of
every config vLLM runs; each row at each step must equal the same request's
solo logitkit state given the same calls. ci/build_venv_vllm033.sh fetches the
sdist; nothing of it is copied into this repository.
"""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from logitkit_vllm.requests import RequestPlan, server_configs
from logitkit_vllm.v1 import LogitkitLogitsProcessor
from processor_cases import cases
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdateBuilder

from logitkit.state import BatchState

#: vLLM's sdist tests, fetched by ci/build_venv_vllm033.sh into the venv.
VLLM_SDIST = Path(os.environ.get("LOGITKIT_VLLM_SDIST", Path(sys.prefix) / "vllm-sdist"))
sys.path.insert(0, str(VLLM_SDIST))
from tests.v1.logits_processors.test_correctness import _generate_fake_step_update  # noqa: E402

VOCAB = 97


@dataclass
class Workload:
    """What vLLM's generator reads of a request (params, prompt_tokens, out_tokens), and its solo run."""

    workload_index: int
    params: SamplingParams
    prompt_tokens: list[int]
    out_tokens: list[int]
    plan: RequestPlan | None
    solo: BatchState | None = None
    logits: torch.Tensor = field(default_factory=lambda: torch.empty(0))

    def solo_row(self) -> torch.Tensor:
        if self.plan is None:
            return self.logits
        if self.solo is None:  # a request's state from its first step in the batch on, as the adapter's
            self.solo = self.plan.pipeline.new_state()
            seed = self.params.seed
            self.solo.add([self.prompt_tokens + self.out_tokens], steps=len(self.out_tokens), seeds=[seed])
        history = torch.tensor([self.prompt_tokens + self.out_tokens], dtype=torch.int64)
        scores = self.solo.process(history, self.logits[None])[0]
        if self.plan.greedy:
            best = int(scores.argmax())
            scores = torch.full_like(scores, float("-inf")).index_fill_(0, torch.tensor([best]), scores[best])
        return scores


def workload(seed: int) -> list[Workload]:
    runnable, _ = cases()
    configs: list[Any] = [None, *runnable.values()] * 3
    rng = random.Random(seed)
    rng.shuffle(configs)
    items = []
    for index, raw in enumerate(configs):
        params = SamplingParams(seed=300 + index, extra_args=None if raw is None else {"logitkit": raw})
        prompt = [rng.randrange(VOCAB) for _ in range(rng.randint(1, 8))]
        output = [rng.randrange(VOCAB) for _ in range(5 * rng.randint(0, 2))]  # 0, 5 or 10 tokens, as vLLM's test
        logits = torch.randn(VOCAB, generator=torch.Generator().manual_seed(seed * 1000 + index)) * 3
        items.append(Workload(index, params, prompt, output, server_configs().plan(params.extra_args), logits=logits))
    return items


def test_vllms_fake_batches_match_solo_runs() -> None:
    for seed in range(2):
        random.seed(40 + seed)  # vLLM's generator draws from the global random module
        items = workload(seed)
        processor = LogitkitLogitsProcessor(None, torch.device("cpu"), False)  # type: ignore[arg-type]
        builder = BatchUpdateBuilder()
        batch: list[Workload] = []
        wdx, remaining, steps, moved = 0, len(items), 0, 0
        while remaining or batch:
            update, wdx, remaining = _generate_fake_step_update(batch, items, wdx, builder)
            moved += 0 if update is None else len(update.moved)
            processor.update_state(update)
            if batch:
                logits = torch.stack([item.logits for item in batch])
                out = processor.apply(logits.clone())
                for row, item in enumerate(batch):
                    assert torch.equal(out[row], item.solo_row()), (seed, steps, item.workload_index, item.params.extra_args)
            steps += 1
        assert processor.rows.tracked == 0
        assert steps > 10 and moved > 10  # the generator moved rows around
