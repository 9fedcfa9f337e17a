"""Config sections besides the processors: generation settings for ``logitkit.generate``."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from logitkit.model_settings import ModelCallSettings

#: Longest generation a config may ask for: the loops hold [rows, length] buffers, so an
#: unbounded length (1e12) would ask for terabytes up front.
MAX_TOKENS = 1_000_000
#: Most beams (and returned sequences) per prompt, for the same reason.
MAX_BEAMS = 1024


class GenerationSettings(ModelCallSettings):
    """The ``generation:`` section: how long to decode, when to stop, which search (and, inherited, how the model is called)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    max_new_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max_length: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    max_time: float | None = Field(default=None, gt=0)
    stop_strings: list[str] = Field(default_factory=list)
    num_beams: int = Field(default=1, ge=1, le=MAX_BEAMS)
    num_beam_groups: int = Field(default=1, ge=1)
    diversity_penalty: float = Field(default=0.0, ge=0)
    length_penalty: float = 1.0
    early_stopping: bool | Literal["never"] = False
    num_return_sequences: int = Field(default=1, ge=1, le=MAX_BEAMS)
    #: ``true``: transformers' heal_tokens (a biased greedy step regenerates the prompt's tail);
    #: ``constrain``: logitkit's rule (the tail is trimmed, the first new token must extend it).
    token_healing: bool | Literal["constrain"] = False
    seed: int | None = Field(default=None, ge=0)
    #: Keep the processed scores / raw logits of every step in the output.
    output_scores: bool = False
    output_logits: bool = False
    #: A registered search strategy; unset picks decode, beam_search or group_beam_search from num_beams.
    search: str | None = None
    #: The search strategy's own parameters, checked against its ``Config`` model (see docs/plugins/hooks.md).
    search_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _beams_fit(self) -> GenerationSettings:
        if self.num_beams % self.num_beam_groups:
            raise ValueError(f"num_beams ({self.num_beams}) must be a multiple of num_beam_groups ({self.num_beam_groups})")
        if self.num_beams > 1 and self.num_return_sequences > self.num_beams:
            raise ValueError(
                f"num_return_sequences ({self.num_return_sequences}) must be <= num_beams ({self.num_beams})"
            )
        if any(not s for s in self.stop_strings):
            raise ValueError("stop_strings must not contain an empty string")
        return self
