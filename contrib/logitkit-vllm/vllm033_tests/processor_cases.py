"""Every registered processor as a one-processor request config: the ones vLLM runs and the ones it refuses.

The example configs are the ones the built-ins' contract tests use
(tests/test_builtins_contract.py); a third-party processor runs from its
defaults. Nothing is hand-picked: a newly registered processor lands in one
of the two lists.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Any

from logitkit_vllm.requests import PROVIDED_NEEDS
from logitkit_vllm.v1 import LogitkitLogitsProcessor
from vllm import SamplingParams

from logitkit.registry import build_registry

REPO = Path(__file__).resolve().parents[3]
#: The contract tests leave the output constraints to tests/test_constraints.py (they need a tokenizer):
#: a valid config each, so that what refuses them is that need.
CONSTRAINT_EXAMPLES: dict[str, Any] = {
    "json_schema": {"json_schema": {"type": "string"}},
    "regex": {"regex": "[ab]+"},
    "grammar": {"grammar": 'start: "a" | "b"'},
    "choice": {"choice": ["yes", "no"]},
}
#: The eos-driven processors (min_length, forced_eos_token_id, ...) need the config's token ids.
TOKENS = {"eos": [1], "bos": 0}


def _contract_examples() -> dict[str, Any]:
    spec = importlib.util.spec_from_file_location("builtins_contract", REPO / "tests" / "test_builtins_contract.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    examples: dict[str, Any] = {**module.CONFIGS, **CONSTRAINT_EXAMPLES}
    return examples


@cache
def cases() -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """(name -> a config vLLM runs, name -> the refusal of its config)."""
    examples = _contract_examples()
    runnable: dict[str, dict[str, Any]] = {}
    refused: dict[str, str] = {}
    for name in sorted(build_registry().processors):
        example = examples.get(name, {})
        example = example[0] if isinstance(example, list) else example
        config = {"tokens": TOKENS, "processors": [{"name": name, **example}]}
        try:
            LogitkitLogitsProcessor.validate_params(SamplingParams(extra_args={"logitkit": config}))
        except ValueError as refusal:
            refused[name] = str(refusal)
        else:
            # The constraints run in vLLM (vllm_tests/test_structured.py, end to end), but not on
            # these tests' random tokens, which no grammar accepts.
            if "tokenizer" not in build_registry().processors[name].cls.needs:
                runnable[name] = config
    return runnable, refused


def cannot_run_in_vllm() -> dict[str, str]:
    """What logitkit-vllm refuses, and the words of the reason: code-only, per-batch state, needs vLLM does not meet."""
    reasons = {}
    for name, entry in build_registry().processors.items():
        if entry.cls.code_only:
            reasons[name] = "build it in code"
        elif not entry.cls.follows_rows:
            reasons[name] = "cannot follow vLLM's rows"
        elif entry.cls.needs - PROVIDED_NEEDS:
            reasons[name] = f"needs the {sorted(entry.cls.needs - PROVIDED_NEEDS)[0]}"
    return reasons
