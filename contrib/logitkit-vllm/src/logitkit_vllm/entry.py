"""The one ``vllm.logits_processors`` entry point: ``LogitkitProcessor`` is the class for the runner in use.

Both of vLLM's model runners read that entry-point group, and the V1 loader
instantiates whatever it finds, so the package registers one name and this
module resolves it when vLLM loads it.
"""

from __future__ import annotations

from typing import Any

from logitkit_vllm.engine_config import engine_config


def v2_runner_in_use() -> bool:
    """Whether the engine loading the entry runs Model Runner V2.

    From the engine's config when there is one (vLLM decides there, e.g. V2 by
    default on GPUs with Triton), else from ``VLLM_USE_V2_MODEL_RUNNER``.
    """
    config = engine_config()
    if config is not None:
        return bool(config.use_v2_model_runner)
    import vllm.envs as envs

    return bool(envs.VLLM_USE_V2_MODEL_RUNNER)


def __getattr__(name: str) -> Any:
    if name != "LogitkitProcessor":
        raise AttributeError(name)
    # Each runner's loader rejects the other's class: resolve for the runner this process runs.
    if v2_runner_in_use():
        from logitkit_vllm.v2 import LogitkitLogitsProcessorV2

        return LogitkitLogitsProcessorV2
    from logitkit_vllm.v1 import LogitkitLogitsProcessor

    return LogitkitLogitsProcessor
