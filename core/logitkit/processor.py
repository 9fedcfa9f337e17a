"""The processor and selector contracts, and the per-step context they receive."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
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
    #: One id, or one per prompt (a multilingual batch), as transformers' decoder_start_token_id.
    decoder_start: NonNegativeInt | list[NonNegativeInt] | None = None
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


#: A stateful element's state for the rows of a batch: tensors whose first dimension is the row,
#: or lists holding one Python object per row (a grammar matcher). The host keeps it aligned with
#: the batch (adds, removes, moves, beam reorders) by indexing every value by row, cloning a list
#: item with ``clone_row`` when a row forks, so the element itself never sees those events. An
#: element with ``follows_rows = False`` may keep anything here; hosts then never move its rows.
RowState = dict[str, Any]


@dataclass(frozen=True)
class NewRows:
    """Rows joining a batch, as a stateful element's ``init_rows`` receives them.

    ``input_ids`` holds each row's prompt right-aligned ([rows, length]);
    ``prompt_lengths`` and ``seeds`` ([rows] int64, seed -1 when none was
    given) are per row.
    """

    input_ids: torch.Tensor
    prompt_lengths: torch.Tensor
    seeds: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def device(self) -> torch.device:
        return self.input_ids.device


def _per_row(value: int | torch.Tensor, rows: int, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.int64 and value.device == device and value.shape == (rows,):
            return value  # already per row: skip two dispatches on every step
        return value.to(device=device, dtype=torch.int64).reshape(rows)
    return torch.full((rows,), int(value), dtype=torch.int64, device=device)


@dataclass
class StepContext:
    """What a processor may read at one decoding step.

    ``input_ids`` ([batch, length]) holds each row's own tokens right-aligned:
    the row's prompt (its padding included), then its generated tokens, so the
    last column is every row's latest token. Rows may be at different steps;
    columns left of a row's own tokens are batch padding and belong to no one.
    ``prompt_lengths`` and ``steps`` ([batch] int64) give each row's prompt
    length and its number of generated tokens (an int sets every row alike).
    ``seeds`` ([batch] int64) are per-row sample seeds, -1 where none was
    given; ``state`` is the batch's live state when a host drives one.
    """

    input_ids: torch.Tensor
    prompt_lengths: torch.Tensor
    steps: torch.Tensor
    tokens: TokenSettings = field(default_factory=TokenSettings)
    attention_mask: torch.Tensor | None = None
    encoder_input_ids: torch.Tensor | None = None
    tokenizer: Any = None
    model: Any = None
    seeds: torch.Tensor | None = None
    # Beam search passes log-softmax scores, as transformers does.
    beam_search: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    state: Any = None

    def __post_init__(self) -> None:
        rows, device = self.batch_size, self.input_ids.device
        self.prompt_lengths = _per_row(self.prompt_lengths, rows, device)
        self.steps = _per_row(self.steps, rows, device)

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    @property
    def eos_token_ids(self) -> list[int]:
        return list(self.tokens.eos or [])

    @property
    def context_lengths(self) -> torch.Tensor:
        """[batch]: each row's own tokens in ``input_ids`` (prompt plus generated)."""
        return self.prompt_lengths + self.steps

    @property
    def step(self) -> int:
        """The step every row is at; only for processors with ``mixed_rows = False``, which see aligned rows."""
        step = self.same_step
        if step is None:
            raise ValueError("rows are at different steps: read ctx.steps (and set mixed_rows = True)")
        return step

    @property
    def prompt_length(self) -> int:
        """The prompt length every row shares; only for processors with ``mixed_rows = False``."""
        lengths = self.prompt_lengths.tolist()
        if not lengths or any(n != lengths[0] for n in lengths):
            raise ValueError("rows have different prompt lengths: read ctx.prompt_lengths")
        return int(lengths[0])

    @cached_property
    def step_list(self) -> list[int]:
        """The steps as Python ints (one host sync, made once per context)."""
        return [int(s) for s in self.steps.tolist()]

    @cached_property
    def same_step(self) -> int | None:
        """The step when every row is at the same one, else None."""
        steps = self.step_list
        return steps[0] if steps and all(s == steps[0] for s in steps) else None

    @cached_property
    def aligned(self) -> bool:
        """True when every row's own tokens fill ``input_ids`` (no batch padding on the left)."""
        return bool((self.context_lengths == self.input_ids.shape[-1]).all())

    @cached_property
    def uniform(self) -> bool:
        """True when every row is at the same step with the same prompt length and no batch padding."""
        return self.same_step is not None and self.aligned and bool(
            (self.prompt_lengths == self.prompt_lengths[:1]).all()
        )

    def built_uniform(self, step: int) -> StepContext:
        """Record what a caller that built every row alike already knows, sparing the host syncs that would find it."""
        self.__dict__.update(
            step_list=[step] * self.batch_size, same_step=step, aligned=True, uniform=True
        )
        return self

    def positions_from_end(self) -> torch.Tensor:
        """[length]: how many columns each column is before the end (the last column is 0)."""
        length = self.input_ids.shape[-1]
        return torch.arange(length - 1, -1, -1, device=self.input_ids.device)

    def generated_mask(self) -> torch.Tensor:
        """Bool [batch, length]: the columns holding each row's generated tokens."""
        return self.positions_from_end().unsqueeze(0) < self.steps.unsqueeze(-1)

    def history_mask(self) -> torch.Tensor:
        """Bool [batch, length]: the columns holding each row's own tokens (prompt and generated)."""
        return self.positions_from_end().unsqueeze(0) < self.context_lengths.unsqueeze(-1)

    def rows(self, index: Sequence[int]) -> StepContext:
        """The context of some rows that share their prompt length and step, batch padding cut off."""
        picked = torch.tensor(list(index), dtype=torch.int64, device=self.input_ids.device)
        own = int(self.context_lengths[index[0]])
        start = self.input_ids.shape[-1] - own
        mask = self.attention_mask
        if mask is not None and mask.shape[0] == self.batch_size:
            mask = mask[picked][:, start:] if mask.shape[-1] == self.input_ids.shape[-1] else mask[picked]
        encoder = self.encoder_input_ids
        if encoder is not None and encoder.dim() == 2 and encoder.shape[0] == self.batch_size:
            encoder = encoder[picked]
        return replace(
            self,
            input_ids=self.input_ids[picked, start:],
            prompt_lengths=self.prompt_lengths[picked],
            steps=self.steps[picked],
            attention_mask=mask,
            encoder_input_ids=encoder,
            seeds=self.seeds[picked] if self.seeds is not None else None,
            state=self.state.subset(picked) if self.state is not None else None,
        )

    def row_groups(self) -> list[list[int]]:
        """Row indices grouped by (prompt length, step), in order of first appearance."""
        groups: dict[tuple[int, int], list[int]] = {}
        pairs = zip(self.prompt_lengths.tolist(), self.step_list, strict=True)
        for row, key in enumerate(pairs):
            groups.setdefault(key, []).append(row)
        return list(groups.values())

    def row_state(self, element: object) -> RowState | None:
        """``element``'s state for this batch's rows, or None when no host keeps one."""
        if self.state is None:
            return None
        found: RowState | None = self.state.row_state(element)
        return found


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
    #: False when the state from ``init_rows`` cannot follow rows that move, leave or fork
    #: (beams, continuous batching); hosts that need that refuse the processor.
    follows_rows: ClassVar[bool] = True
    #: True when ``apply`` handles rows at different steps and prompt lengths in one call (it
    #: reads ``ctx.steps`` / ``ctx.prompt_lengths`` / the history masks per row, or none of them).
    #: Otherwise a batch with mixed rows is split into groups that share both, each with its
    #: batch padding cut off, so the processor only ever sees aligned rows.
    mixed_rows: ClassVar[bool] = False
    #: True when the row state holds only what a call without a state derives from the context
    #: the same way (each row's seed): a call on its own then skips building a batch state.
    seeds_only_state: ClassVar[bool] = False

    def __init__(self, config: BaseModel | None = None, tokens: TokenSettings | None = None) -> None:
        self.config = config if config is not None else self.Config()
        self.tokens = tokens if tokens is not None else TokenSettings()

    @classmethod
    def check(cls, config: BaseModel, context: CheckContext) -> Iterable[str]:
        """Problems visible only with the rest of the pipeline config (e.g. a missing eos id)."""
        return ()

    @classmethod
    def complete(cls, config: BaseModel, context: CheckContext) -> BaseModel:
        """The config with unset fields taken from the rest of the config; runs before ``check``.

        For example ``forced_eos_token_id`` takes ``generation.max_new_tokens``.
        The default returns ``config`` as it is.
        """
        return config

    @classmethod
    def forced_tokens(cls, config: BaseModel) -> set[int]:
        """Token ids this processor forces; a token forced and then suppressed is a config error."""
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

    def init_rows(self, rows: NewRows) -> RowState | None:
        """State for rows joining a batch; None (the default) means the processor keeps none.

        Return tensors whose first dimension is ``rows.count``. A processor
        that derives everything from ``ctx`` needs none of this protocol.
        """
        return None

    def accept(self, state: RowState, tokens: torch.Tensor) -> None:
        """Update ``state`` in place with each row's chosen token ([batch]) after a step."""

    def clone_row(self, item: Any) -> Any:
        """A copy of one row's list item, for a row that forks (beam search); deep copy by default."""
        return copy.deepcopy(item)

    def complete_rows(self, state: RowState) -> torch.Tensor | None:
        """Bool ``[rows]``: rows whose output so far satisfies this processor, so ending them here completes it.

        Asked before the step's tokens are accepted. A row that ends with eos
        while a processor reports it complete finishes with the ``constraint``
        reason instead of ``eos`` (a grammar that can end there, say). None (the
        default) reports nothing.
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"


class Selector:
    """Picks one token per row from processed scores; always the last element of a chain."""

    name: ClassVar[str]
    stage: ClassVar[int] = Stage.SELECTION
    Config: ClassVar[type[BaseModel]] = EmptyConfig
    primary: ClassVar[str | None] = None
    summary: ClassVar[str] = ""
    follows_rows: ClassVar[bool] = True
    #: See ``Processor.seeds_only_state``.
    seeds_only_state: ClassVar[bool] = False

    def __init__(self, config: BaseModel | None = None, tokens: TokenSettings | None = None) -> None:
        self.config = config if config is not None else self.Config()
        self.tokens = tokens if tokens is not None else TokenSettings()

    def select(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        raise NotImplementedError

    def init_rows(self, rows: NewRows) -> RowState | None:
        """State for rows joining a batch (see ``Processor.init_rows``)."""
        return None

    def accept(self, state: RowState, tokens: torch.Tensor) -> None:
        """Update ``state`` in place with each row's chosen token after a step."""

    def clone_row(self, item: Any) -> Any:
        """A copy of one row's list item, for a row that forks (see ``Processor.clone_row``)."""
        return copy.deepcopy(item)

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
