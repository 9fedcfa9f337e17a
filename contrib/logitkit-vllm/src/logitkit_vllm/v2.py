"""The logits processor for vLLM's Model Runner V2 (``vllm.v1.worker.gpu.sample.logits_processor``).

V2 differs from V1 in what it tells a processor: a request joins a
persistent *slot* (``add_request``; slots are recycled with no remove
call), its tokens live in the runner's per-slot buffers rather than in a list
handed over, and each step's ``LogitsContext`` says which slot each logits
row belongs to (rows are reordered every step). The same ``ConfigRows`` as
V1 does the work, tracking slots: before each step the rows read their new
tokens from ``req_states``, tracked slots absent from the step leave (a
finished request, or one not scheduled: it rejoins with its tokens replayed),
and ``apply`` maps each slot to its row of this step's logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

import torch
from vllm.v1.worker.gpu.sample.logits_processor import (
    LogitsContext,
    LogitsProcessor,
    LogitsProcRequestState,
)

from logitkit_vllm.admission import validate_request
from logitkit_vllm.requests import RequestPlan, server_configs
from logitkit_vllm.rows import ConfigRows
from logitkit_vllm.tokenizer import served_tokenizer

if TYPE_CHECKING:
    from vllm import SamplingParams
    from vllm.config import VllmConfig


@dataclass
class _Slot:
    """A slot's request with a logitkit config."""

    plan: RequestPlan
    seed: int | None
    prompt_len: int = 0
    #: The request's output tokens read so far (ConfigRows holds this list).
    output: list[int] = field(default_factory=list)


class LogitkitLogitsProcessorV2(LogitsProcessor):
    """Runs each request's logitkit config (``extra_args["logitkit"]``) on its rows; vLLM then samples."""

    def __init__(self, vllm_config: VllmConfig, req_states: LogitsProcRequestState) -> None:
        self.configs = server_configs()
        self.req_states = req_states
        self.rows = ConfigRows(req_states.device, tokenizer=cache(lambda: served_tokenizer(vllm_config)))
        self._slots: dict[int, _Slot] = {}
        #: Slots whose rows are in ``self.rows`` now.
        self._joined: set[int] = set()

    @classmethod
    def validate_params(cls, sampling_params: SamplingParams) -> None:
        validate_request(sampling_params)

    def add_request(self, req_idx: int, sampling_params: SamplingParams) -> bool:
        # The slot may still hold its previous request's row: it leaves now.
        self.rows.remove(req_idx)
        self._joined.discard(req_idx)
        plan = self.configs.plan(sampling_params.extra_args)
        if plan is None:
            self._slots.pop(req_idx, None)
            return False  # vLLM then skips this processor for the request
        # Its tokens are staged, not written yet: the row joins at its first step.
        self._slots[req_idx] = _Slot(plan, sampling_params.seed)
        return True

    def apply(self, logits: torch.Tensor, ctx: LogitsContext) -> torch.Tensor:
        slots: list[int] = [int(s) for s in ctx.idx_mapping_np]
        if logits.shape[0] != len(slots):
            # One row per draft token: admission refuses configs under speculative decoding.
            raise RuntimeError("logitkit-vllm: speculative decoding is not supported (one logits row per request expected)")
        present = [s for s in slots if s in self._slots]
        for gone in self._joined.difference(present):
            self.rows.remove(gone)
            self._joined.discard(gone)
        if not present:
            return logits
        self._read_tokens(present)
        return self.rows.apply(logits, {slot: row for row, slot in enumerate(slots)})

    def _read_tokens(self, present: list[int]) -> None:
        """New committed tokens of the step's rows into their output lists; first-seen rows join."""
        states = self.req_states
        totals = states.total_len.gpu[torch.tensor(present, device=states.total_len.gpu.device)].tolist()
        tokens = states.all_token_ids.gpu
        for slot, total in zip(present, totals, strict=True):
            info = self._slots[slot]
            if slot in self._joined:
                known = info.prompt_len + len(info.output)
                if total > known:
                    info.output.extend(tokens[slot, known:total].tolist())
                continue
            info.prompt_len = int(states.prompt_len.np[slot])
            history = tokens[slot, :total].tolist()
            info.output[:] = history[info.prompt_len :]
            self.rows.add(slot, info.plan, history[: info.prompt_len], info.output, info.seed)
            self._joined.add(slot)
