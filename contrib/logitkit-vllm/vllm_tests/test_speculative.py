"""Under speculative decoding vLLM loads no logits-processor plugins, so a logitkit config is refused at admission.

Both checks use vLLM's own code: ``build_logitsprocs`` (what the V1 runner
instantiates) and ``InputProcessor`` (the admission that ``LLM`` and the
OpenAI server run, whose refusal is the server's HTTP 400).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from logitkit_vllm.admission import SPECULATIVE_REFUSAL
from logitkit_vllm.v1 import LogitkitLogitsProcessor
from vllm import SamplingParams
from vllm.engine.arg_utils import EngineArgs
from vllm.exceptions import VLLMValidationError
from vllm.v1.engine.input_processor import InputProcessor
from vllm.v1.sample.logits_processor import build_logitsprocs
from vllm_helpers import DEMO_MODEL

NGRAM = {"method": "ngram", "num_speculative_tokens": 2, "prompt_lookup_max": 3}


def engine_config(speculative: dict[str, Any] | None) -> Any:
    args = EngineArgs(model=DEMO_MODEL, dtype="float32", max_model_len=256, enforce_eager=True, speculative_config=speculative)
    return args.create_engine_config()


@pytest.fixture(scope="module")
def speculative_config() -> Any:
    return engine_config(NGRAM)


def admit(config: Any, extra_args: dict[str, Any] | None) -> None:
    InputProcessor(config)._validate_params(SamplingParams(max_tokens=4, extra_args=extra_args), ("generate",))


def test_vllm_loads_no_plugin_processor_under_speculative_decoding(speculative_config: Any) -> None:
    loaded = build_logitsprocs(speculative_config, torch.device("cpu"), False, False)
    assert not any(isinstance(p, LogitkitLogitsProcessor) for p in loaded.all)
    plain = build_logitsprocs(engine_config(None), torch.device("cpu"), False, False)
    assert any(isinstance(p, LogitkitLogitsProcessor) for p in plain.all)  # the same install loads it otherwise


def test_a_logitkit_config_is_refused_at_admission_under_speculative_decoding(speculative_config: Any) -> None:
    with pytest.raises(VLLMValidationError, match="speculative decoding") as refused:  # an HTTP 400 online
        admit(speculative_config, {"logitkit": "combined"})
    assert SPECULATIVE_REFUSAL in str(refused.value)
    admit(speculative_config, None)  # requests without a config are served as before
    admit(engine_config(None), {"logitkit": "combined"})  # without speculative decoding the config is admitted
