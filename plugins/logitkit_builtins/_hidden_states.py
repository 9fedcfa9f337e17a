"""The hidden states of a transformers model's forward passes, for searches that read them (contrastive, DoLa).

The runners in ``logitkit.models`` return logits only. ``record_hidden_states``
puts a thin proxy in front of the runner's model that asks every call for
``output_hidden_states`` and keeps the last output, so a strategy reuses the
runner's cache handling (prefill, one token per step, reorder) unchanged.
"""

from __future__ import annotations

from typing import Any

from logitkit.models import Runner


class HiddenStatesRecorder:
    """Stands in for the model: same attributes, every call returns (and keeps) hidden states too."""

    def __init__(self, model: Any) -> None:
        self.wrapped = model
        self.last: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["output_hidden_states"] = True
        self.last = self.wrapped(*args, **kwargs)
        return self.last

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    def decoder_hidden_states(self) -> tuple[Any, ...]:
        """The last call's decoder hidden states: embeddings, then one per layer (the last one normed)."""
        out = self.last
        states = getattr(out, "decoder_hidden_states", None)
        if states is None:
            states = getattr(out, "hidden_states", None)
        if states is None:
            raise ValueError(f"{type(self.wrapped).__name__} returned no hidden states")
        return tuple(states)


def record_hidden_states(runner: Runner, strategy: str) -> HiddenStatesRecorder:
    """Wrap ``runner``'s model; a plain callable has no hidden states, so it is refused by name."""
    model = getattr(runner, "model", None)
    if model is None:
        raise ValueError(
            f"{strategy} reads the model's hidden states: pass a transformers model, not a plain callable"
        )
    recorder = model if isinstance(model, HiddenStatesRecorder) else HiddenStatesRecorder(model)
    runner.model = recorder
    return recorder
