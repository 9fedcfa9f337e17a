"""Bench cases for speculative decoding: the demo model completing code that repeats its own context.

Each case times a speculative search against plain greedy decoding of the
same model, prompt and length (tokens/s, one row), and checks that both
produce the same tokens before anything is timed, and on every timed call.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch

#: A code prompt whose continuation repeats what it has already written (prompt lookup's best case).
CODE_PROMPT = '''def area(width, height):
    return width * height


def perimeter(width, height):
    return 2 * (width + height)


def area(width, height):
    return width * height


def perimeter(width, height):
'''

Timed = Callable[[], Any]


def _demo() -> tuple[Any, torch.Tensor]:
    from logitkit.demo import load_codec, load_model

    model, codec = load_model(), load_codec()
    return model, torch.tensor([[0, *codec.encode(CODE_PROMPT)]])


def _shallow_copy(model: Any, layers: int) -> Any:
    """A smaller assistant sharing the model's tokenizer: a copy keeping its first ``layers`` layers."""
    assistant = copy.deepcopy(model)
    assistant.model.layers = assistant.model.layers[:layers]
    assistant.config.num_hidden_layers = layers
    return assistant


def speculative_case(
    search: str, options: dict[str, Any], assistant_layers: int | None = None
) -> Callable[[Any], tuple[Timed, Timed, None]]:
    """Build ``(speculative, plain greedy, None)`` for ``logitkit.bench`` (``shape.new_tokens`` tokens)."""

    def build(shape: Any) -> tuple[Timed, Timed, None]:
        from logitkit.generation import generate

        model, prompt = _demo()
        extra: dict[str, Any] = {}
        if assistant_layers is not None:
            extra["assistant_model"] = _shallow_copy(model, assistant_layers)
        common: dict[str, Any] = {"max_new_tokens": shape.new_tokens, "eos_token_id": [], "pad_token_id": 0}

        def plain() -> torch.Tensor:
            sequences: torch.Tensor = generate(model, prompt, **common).sequences
            return sequences

        expected = plain()

        def ours() -> torch.Tensor:
            sequences: torch.Tensor = generate(
                model, prompt, search=search, search_options=options, **common, **extra
            ).sequences
            if not torch.equal(sequences, expected):
                raise AssertionError(f"bench {search}: the speculative tokens differ from plain greedy")
            return sequences

        ours()  # the identity check, before anything is timed
        return ours, plain, None

    return build
