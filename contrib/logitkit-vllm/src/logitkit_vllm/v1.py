"""The logits processor for vLLM's V1 model runner (``vllm.v1.sample.logits_processor``)."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import torch
from vllm import SamplingParams
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from logitkit_vllm.admission import validate_request
from logitkit_vllm.requests import server_configs
from logitkit_vllm.rows import ConfigRows
from logitkit_vllm.tokenizer import served_tokenizer

if TYPE_CHECKING:
    from vllm.config import VllmConfig


class LogitkitLogitsProcessor(LogitsProcessor):
    """Runs each request's logitkit config (``extra_args["logitkit"]``) on its rows; vLLM then samples."""

    def __init__(self, vllm_config: VllmConfig, device: torch.device, is_pin_memory: bool) -> None:
        self.configs = server_configs()
        self.rows = ConfigRows(device, tokenizer=cache(lambda: served_tokenizer(vllm_config)))

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        # At admission: a bad config is refused before the request reaches a batch (HTTP 400 online).
        validate_request(sampling_params)

    def is_argmax_invariant(self) -> bool:
        # Penalties, bans and forcing change the best token: greedy requests need the call too.
        return False

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if batch_update is None:
            return
        for index in batch_update.removed:
            self.rows.remove(index)
        for index, params, prompt_ids, output_ids in batch_update.added:
            plan = self.configs.plan(params.extra_args)
            self.rows.add(index, plan, prompt_ids, output_ids, params.seed)
        for source, target, direction in batch_update.moved:
            self.rows.move(source, target, swap=direction == MoveDirectionality.SWAP)

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        return self.rows.apply(logits)
