"""Run logitkit configs inside vLLM: per-request configs by name, one processor call per distinct config.

``logitkit_vllm.v1.LogitkitLogitsProcessor`` is the processor (it imports vLLM);
``ConfigRows`` and ``RequestConfigs`` are engine-independent and import only logitkit.
"""

from logitkit_vllm.requests import EXTRA_ARGS_KEY, RequestConfigs, RequestPlan, ServerPolicy
from logitkit_vllm.rows import ConfigRows

__all__ = ["EXTRA_ARGS_KEY", "ConfigRows", "RequestConfigs", "RequestPlan", "ServerPolicy"]
