"""The processor and selector contracts, and the per-step context they receive."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, NonNegativeInt, PositiveInt, field_validator

from logitkit.stages import Stage
from logitkit.strict import StrictModel


class ProcessorConfig(StrictModel):
    """Base for processor configs: unknown fields are errors, numbers are strict (no bools, no strings, int64)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class EmptyConfig(ProcessorConfig):
    """Config for processors without parameters."""


class TokenSettings(StrictModel):
    """The special tokens a config may declare in its ``tokens:`` section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    eos: list[NonNegativeInt] | None = None
    bos: NonNegativeInt | None = None
    pad: NonNegativeInt | None = None
    decoder_start: NonNegativeInt | None = None
    vocab_size: PositiveInt | None = None

    @field_validator("eos", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value


@dataclass(frozen=True)
class CheckContext:
    """What ``Processor.check`` may read: the rest of the validated config."""

    tokens: TokenSettings
    generation: Any
    processors: tuple[str, ...] = ()


@dataclass
class StepContext:
    """What a processor may read at one decoding step.

    ``input_ids`` is the whole sequence so far (prompt and generated tokens).
    ``step`` counts generated tokens; ``prompt_length`` is the prompt's length
    in ``input_ids`` (padding included).
    """

    input_ids: torch.Tensor
    prompt_length: int
    step: int
    tokens: TokenSettings = field(default_factory=TokenSettings)
    attention_mask: torch.Tensor | None = None
    encoder_input_ids: torch.Tensor | None = None
    tokenizer: Any = None
    model: Any = None
    seeds: torch.Tensor | None = None
    # Beam search passes log-softmax scores, as transformers does.
    beam_search: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def eos_token_ids(self) -> list[int]:
        return list(self.tokens.eos or [])


class Processor:
    """A logits processor: reshapes ``scores`` of shape ``[batch, vocab]``.

    Subclasses set ``name``, ``stage`` and ``Config`` and implement ``apply``.
    ``apply`` must return a new tensor (or the same one untouched): it never
    writes into ``scores`` or ``ctx.input_ids``.
    """

    name: ClassVar[str]
    stage: ClassVar[int] = Stage.LOGITS
    priority: ClassVar[int] = 0
    Config: ClassVar[type[BaseModel]] = EmptyConfig
    #: The field that ``- name: value`` shorthand sets; defaults to ``name``.
    primary: ClassVar[str | None] = None
    #: True when ``apply`` never changes which token has the highest score.
    argmax_invariant: ClassVar[bool] = False
    #: Context the processor reads: any of "input_ids", "encoder_input_ids", "tokenizer", "model".
    needs: ClassVar[frozenset[str]] = frozenset()
    #: One-line description shown by ``logitkit list``; defaults to the docstring's first line.
    summary: ClassVar[str] = ""
    #: Set by ``register(cls, code_only=True)`` users: the processor cannot come from a config file.
    code_only: ClassVar[bool] = False
    #: Config fields holding token ids (an int, or lists of them, nested or not); see ``token_ids``.
    token_id_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: BaseModel | None = None, tokens: TokenSettings | None = None) -> None:
        self.config = config if config is not None else self.Config()
        self.tokens = tokens if tokens is not None else TokenSettings()

    @classmethod
    def check(cls, config: BaseModel, context: CheckContext) -> Iterable[str]:
        """Problems visible only with the rest of the pipeline config (e.g. a missing eos id)."""
        return ()

    @classmethod
    def forced_tokens(cls, config: BaseModel) -> set[int]:
        """Token ids this processor forces; a token both forced and suppressed is a config error."""
        return set()

    @classmethod
    def suppressed_tokens(cls, config: BaseModel) -> set[int]:
        """Token ids this processor always removes."""
        return set()

    @classmethod
    def token_ids(cls, config: BaseModel) -> Iterable[tuple[str, int]]:
        """``(field path, id)`` for every token id the config names.

        The core checks each one against ``tokens.vocab_size`` when the config
        declares it. The default walks ``token_id_fields``; override it when ids
        sit somewhere the walk cannot tell apart (dict values, nested models).
        """
        for name in cls.token_id_fields:
            yield from walk_token_ids(name, getattr(config, name, None))

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        raise NotImplementedError

    def accept(self, tokens: torch.Tensor) -> None:
        """Called with the chosen tokens after each step; stateful processors override it."""

    def reset(self) -> None:
        """Called before a new generation; stateful processors override it."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


class Selector:
    """Picks one token per row from processed scores; always the last element of a chain."""

    name: ClassVar[str]
    stage: ClassVar[int] = Stage.SELECTION
    Config: ClassVar[type[BaseModel]] = EmptyConfig
    primary: ClassVar[str | None] = None
    summary: ClassVar[str] = ""

    def __init__(self, config: BaseModel | None = None, tokens: TokenSettings | None = None) -> None:
        self.config = config if config is not None else self.Config()
        self.tokens = tokens if tokens is not None else TokenSettings()

    def select(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        raise NotImplementedError

    def accept(self, tokens: torch.Tensor) -> None:
        """Called with the chosen tokens after each step."""

    def reset(self) -> None:
        """Called before a new generation."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


def walk_token_ids(path: str, value: Any) -> Iterable[tuple[str, int]]:
    """``(path, id)`` for an int or any nesting of lists/tuples of ints; other values hold no ids."""
    if isinstance(value, int) and not isinstance(value, bool):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from walk_token_ids(f"{path}[{i}]", item)


def summary_of(cls: type) -> str:
    explicit = getattr(cls, "summary", "")
    if explicit:
        return str(explicit)
    doc = (cls.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""
