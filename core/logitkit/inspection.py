"""The next-token distribution after each stage of a pipeline, for ``explain`` and ``plot``.

This is the library half of those commands: it computes, never prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from logitkit.pipeline import Pipeline
from logitkit.stages import stage_label

#: The synthetic distribution's defaults: standard normal logits, like the source document's figures.
SYNTHETIC_VOCAB = 1000
SYNTHETIC_SEED = 42


def synthetic_logits(vocab_size: int = SYNTHETIC_VOCAB, seed: int = SYNTHETIC_SEED) -> torch.Tensor:
    """Fixed logits drawn from N(0, 1): the same on every machine, no model needed."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(vocab_size, generator=generator, dtype=torch.float64).float()


def probabilities(scores: torch.Tensor) -> torch.Tensor:
    """softmax in float64; a row with no finite score left is all zeros rather than NaN."""
    scores = scores.to(torch.float64)
    if not bool(torch.isfinite(scores).any()) and not bool((scores == float("inf")).any()):
        return torch.zeros_like(scores)
    return torch.softmax(scores, dim=-1)


def entropy(probs: torch.Tensor) -> float:
    """Shannon entropy in nats, H = -sum p log p (zero-probability tokens contribute nothing)."""
    positive = probs[probs > 0]
    # A lone token gives p log p = -0.0 (or a rounding hair below 0); entropy is never negative.
    return max(0.0, float(-(positive * positive.log()).sum()))


def temperature_entropies(logits: torch.Tensor, temperatures: Sequence[float]) -> list[float]:
    """Entropy of softmax(logits / T) for each T > 0."""
    return [entropy(probabilities(logits / t)) for t in temperatures]


@dataclass(frozen=True)
class StageView:
    """The distribution at one point of the pipeline."""

    #: "model" for the raw distribution, else the processor's name.
    label: str
    stage: str
    #: The full distribution over the vocabulary (removed tokens have probability 0).
    probs: torch.Tensor = field(repr=False)
    survivors: int
    #: Entropy in nats.
    entropy: float
    #: Probability, in the distribution entering this stage, of the tokens that survive it.
    kept_mass: float
    #: Probability of the survivors under the model's raw distribution.
    model_mass: float
    #: The most likely tokens: (token id, probability), best first.
    top: tuple[tuple[int, float], ...]
    parameters: dict[str, Any] = field(default_factory=dict)


def _view(
    label: str,
    stage: str,
    scores: torch.Tensor,
    before: torch.Tensor,
    raw: torch.Tensor,
    top: int,
    parameters: dict[str, Any],
) -> StageView:
    probs = probabilities(scores)
    alive = probs > 0
    k = min(top, int(alive.sum()))
    values, indices = torch.topk(probs, k)
    return StageView(
        label=label,
        stage=stage,
        probs=probs,
        survivors=int(alive.sum()),
        entropy=entropy(probs),
        kept_mass=float(before[alive].sum()),
        model_mass=float(raw[alive].sum()),
        top=tuple((int(i), float(v)) for i, v in zip(indices, values, strict=True)),
        parameters=parameters,
    )


def stage_views(
    pipe: Pipeline, scores: torch.Tensor, input_ids: torch.Tensor | None = None, top: int = 5
) -> list[StageView]:
    """The raw distribution, then the distribution after each processor in run order.

    ``scores`` is one row of logits (``[vocab]`` or ``[1, vocab]``); ``input_ids``
    is the prompt (a single placeholder token when there is none, as with
    synthetic logits).
    """
    row = scores.reshape(1, -1)
    ids = (
        input_ids.reshape(1, -1) if input_ids is not None else torch.zeros((1, 1), dtype=torch.long)
    )
    ctx = pipe.step_context(ids)
    raw = probabilities(row[0])
    views = [_view("model", "", row[0], raw, raw, top, {})]
    for processor in pipe.processors:
        before = views[-1].probs
        row = processor.apply(row, ctx)
        params = processor.config.model_dump()
        views.append(
            _view(
                processor.name, stage_label(int(processor.stage)), row[0], before, raw, top, params
            )
        )
    return views


def next_token_logits(model: Any, input_ids: torch.Tensor) -> torch.Tensor:
    """The model's logits for the token after ``input_ids`` (one forward pass, float32)."""
    with torch.no_grad():
        out = model(input_ids=input_ids.reshape(1, -1))
    logits: torch.Tensor = out.logits[0, -1].float()
    return logits
