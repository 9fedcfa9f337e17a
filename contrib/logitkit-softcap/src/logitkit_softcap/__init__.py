"""logit_softcap: bound logits to (-cap, cap) smoothly, before temperature."""

from __future__ import annotations

from collections.abc import Callable

import torch
from pydantic import Field

from logitkit import Processor, ProcessorConfig, Stage, StepContext, hookimpl

#: Between the built-in logits stage (penalties, masks) and temperature.
SOFTCAP_STAGE = (Stage.LOGITS + Stage.TEMPERATURE) // 2


class SoftcapConfig(ProcessorConfig):
    cap: float = Field(default=30.0, gt=0, description="Logits are squashed into (-cap, cap).")


class LogitSoftcap(Processor):
    """Squash logits into (-cap, cap) with cap * tanh(z / cap); keeps their order."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    name = "logit_softcap"
    stage = SOFTCAP_STAGE
    Config = SoftcapConfig
    primary = "cap"
    argmax_invariant = True

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        cap = self.config.cap
        # tanh keeps -inf masks as -cap; restore them so masked tokens stay masked.
        capped = torch.tanh(scores / cap) * cap
        return capped.masked_fill(scores == float("-inf"), float("-inf"))


@hookimpl
def register_processors(register: Callable[..., None]) -> None:
    register(LogitSoftcap)
