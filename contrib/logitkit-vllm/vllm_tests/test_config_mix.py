"""The mixed configs the vLLM tests run are all valid requests."""

from __future__ import annotations

from logitkit_vllm.requests import RequestConfigs, ServerPolicy
from vllm_helpers import CONFIGS


def test_every_config_is_valid() -> None:
    configs = RequestConfigs(ServerPolicy())
    for raw in CONFIGS:
        plan = configs.plan(None if raw is None else {"logitkit": raw})
        assert (plan is None) == (raw is None)
