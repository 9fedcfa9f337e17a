"""Temperature variants: dynamic (entropy-based) temperature and quadratic smoothing.

References:
- dynamic temperature: llama.cpp ``llama_sampler_temp_ext_apply``
  (src/llama-sampling.cpp; parameters ``--temp``, ``--dynatemp-range``,
  ``--dynatemp-exp``) and text-generation-webui ``DynamicTemperatureLogitsWarper``
  (``dynatemp_low = temp - range``, ``dynatemp_high = temp + range``).
- quadratic smoothing: text-generation-webui ``QuadraticSamplingLogitsWarper``
  (``smoothing_factor``, ``smoothing_curve``).
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from logitkit import Processor, ProcessorConfig, Stage, StepContext

NEG_INF = float("-inf")


def keep_argmax(scores: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """In ``rows`` ([batch, 1] bool), keep only the top token: the limit of temperature -> 0."""
    top = torch.zeros_like(scores, dtype=torch.bool).scatter(
        -1, scores.argmax(dim=-1, keepdim=True), True
    )
    return scores.masked_fill(rows & ~top, NEG_INF)


class DynamicTemperatureConfig(ProcessorConfig):
    temperature: float = Field(
        default=1.0, ge=0, description="The centre of the temperature range."
    )
    range: float = Field(
        default=0.0, ge=0, description="T varies within [max(0, T - range), T + range]."
    )
    exponent: float = Field(
        default=1.0, gt=0, description="Shapes how normalized entropy maps onto the range."
    )


class DynamicTemperature(Processor):
    """Scale logits by a per-row temperature that grows with the row's normalized entropy."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    name = "dynamic_temperature"
    stage = Stage.TEMPERATURE
    priority = 10
    Config = DynamicTemperatureConfig
    primary = "range"
    argmax_invariant = True

    def temperatures(self, logits: torch.Tensor) -> torch.Tensor:
        """One temperature per row ([batch, 1]), as llama.cpp's temp_ext computes it."""
        cfg = self.config
        low, high = max(0.0, cfg.temperature - cfg.range), cfg.temperature + cfg.range
        finite = torch.isfinite(logits)
        count = finite.sum(dim=-1, keepdim=True)
        logp = torch.where(finite, logits, NEG_INF).log_softmax(dim=-1)
        # A finite logit far below the max (near -max when the max is near +max) has log-probability
        # -inf, and 0 * -inf is NaN: such a token adds nothing to the entropy.
        entropy = -torch.where(finite & (logp > NEG_INF), logp.exp() * logp, 0.0).sum(dim=-1, keepdim=True)
        max_entropy = torch.log(count.clamp(min=2).to(logits.dtype))
        normalized = (entropy / max_entropy).clamp(0.0, 1.0)
        temps = low + (high - low) * normalized.pow(cfg.exponent)
        # One candidate or none: llama.cpp leaves such a row alone (T = 1).
        return torch.where(count <= 1, torch.ones_like(temps), temps)

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        # float64 stays float64 (.float() would overflow it); the rest is computed in float32.
        logits = scores.double() if scores.dtype == torch.float64 else scores.float()
        temps = (
            self.temperatures(logits)
            if self.config.range > 0
            else torch.full((scores.shape[0], 1), self.config.temperature, device=scores.device)
        )
        greedy = temps <= 1e-6
        scaled = logits / torch.where(greedy, 1.0, temps)
        # A tiny temperature can push logits past the dtype's range; saturate rather than
        # turn finite logits into inf (which would empty the row or make NaN downstream).
        limit = torch.finfo(scores.dtype).max
        scaled = torch.where(torch.isfinite(logits), scaled.clamp(-limit, limit), logits)
        out = scaled.to(scores.dtype)
        return keep_argmax(out, greedy) if bool(greedy.any()) else out


class QuadraticSmoothingConfig(ProcessorConfig):
    smoothing_factor: float = Field(
        default=0.0, ge=0, description="Strength of the quadratic pull towards the top logit."
    )
    smoothing_curve: float = Field(
        default=1.0, ge=1, le=10, description="1 is purely quadratic; larger adds a cubic term."
    )


class QuadraticSmoothing(Processor):
    """Replace each logit by max - k*f*d**2 + s*f*d**3, where d is its distance below the row's max."""

    # Reads nothing from the context but the scores: rows at any step share one call.
    mixed_rows = True

    name = "quadratic_smoothing"
    stage = Stage.TEMPERATURE
    priority = 20
    Config = QuadraticSmoothingConfig
    primary = "smoothing_factor"
    # Not argmax-invariant: with smoothing_curve > 3 the cubic term can lift a lower logit.

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        factor, curve = self.config.smoothing_factor, self.config.smoothing_curve
        if factor == 0:
            return scores
        # float64: the cubic term of a large logit gap overflows float32 before the cast back.
        logits = scores.double()
        finite = torch.isfinite(logits)
        top = torch.where(finite, logits, NEG_INF).amax(dim=-1, keepdim=True)
        # Per-row max: text-generation-webui takes the max over the whole batch, which would
        # make a row depend on its neighbours.
        diff = torch.where(finite, logits - top, 0.0)
        k, s = (3 - curve) / 2, (curve - 1) / 2
        smoothed = -(k * factor * diff**2) + s * factor * diff**3 + top
        smoothed = torch.nan_to_num(smoothed, nan=NEG_INF, neginf=NEG_INF, posinf=math.inf)
        return torch.where(finite, smoothed, logits).to(scores.dtype)
