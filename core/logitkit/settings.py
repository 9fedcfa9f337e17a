"""Config sections besides the processors: generation settings for ``logitkit.generate``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GenerationSettings(BaseModel):
    """The ``generation:`` section: how long to decode, when to stop, which search."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_new_tokens: int | None = Field(default=None, ge=1)
    max_length: int | None = Field(default=None, ge=1)
    max_time: float | None = Field(default=None, gt=0)
    stop_strings: list[str] = Field(default_factory=list)
    num_beams: int = Field(default=1, ge=1)
    num_beam_groups: int = Field(default=1, ge=1)
    diversity_penalty: float = Field(default=0.0, ge=0)
    length_penalty: float = 1.0
    early_stopping: bool | Literal["never"] = False
    num_return_sequences: int = Field(default=1, ge=1)
    token_healing: bool = False
    seed: int | None = Field(default=None, ge=0)
