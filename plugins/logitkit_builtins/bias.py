"""Sequence biases and banned words: act on the token that would complete a given token sequence.

Every sequence is stored once in padded tensors (prefixes right-aligned),
so matching all sequences against all rows is one comparison per step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field, NonNegativeInt, field_validator, model_validator

from logitkit import Processor, ProcessorConfig, Stage, StepContext
from logitkit.processor import walk_token_ids
from logitkit.strict import StrictModel
from logitkit_builtins._tokens import ban_tokens, eos_ids


class SequenceTable:
    """Token sequences as padded tensors: which rows are about to complete which sequence."""

    def __init__(self, sequences: Sequence[Sequence[int]]) -> None:
        self.sequences = [tuple(s) for s in sequences]
        self.width = max((len(s) - 1 for s in self.sequences), default=0)
        self._tensors: dict[torch.device, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def tensors(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(prefixes ``[S, width]`` right-aligned, their padding mask, last tokens ``[S]``), built once per device."""
        cached = self._tensors.get(device)
        if cached is None:
            prefixes = torch.zeros(len(self.sequences), self.width, dtype=torch.long)
            valid = torch.zeros(len(self.sequences), self.width, dtype=torch.bool)
            for i, seq in enumerate(self.sequences):
                prefix = seq[:-1]
                if prefix:
                    prefixes[i, self.width - len(prefix) :] = torch.tensor(prefix)
                    valid[i, self.width - len(prefix) :] = True
            last = torch.tensor([s[-1] for s in self.sequences], dtype=torch.long)
            cached = self._tensors[device] = (prefixes.to(device), (~valid).to(device), last.to(device))
        return cached

    def completing(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(hit ``[rows, S]``: the row ends with sequence s's prefix, last tokens ``[S]``)."""
        prefixes, padding, last = self.tensors(input_ids.device)
        tail = input_ids[:, max(input_ids.shape[1] - self.width, 0) :]
        if tail.shape[1] < self.width:
            # A context shorter than a prefix is padded with -1, which matches no token.
            tail = F.pad(tail, (self.width - tail.shape[1], 0), value=-1)
        hit = ((tail.unsqueeze(1) == prefixes) | padding).all(dim=-1)
        return hit, last


TokenSequence = list[NonNegativeInt]


class BiasedSequence(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    tokens: TokenSequence = Field(min_length=1, description="The token ids of the sequence; the bias lands on the last one.")
    bias: float = Field(description="Added to the last token's score when the row ends with the others.")

    @model_validator(mode="before")
    @classmethod
    def _from_pair(cls, value: Any) -> Any:
        # transformers' list form: [[10, 45], -2.0]
        if isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[0], (list, tuple)):
            return {"tokens": list(value[0]), "bias": value[1]}
        return value


class SequenceBiasConfig(ProcessorConfig):
    sequence_bias: list[BiasedSequence] = Field(
        min_length=1, description="Sequences and their biases: [{tokens: [10, 45], bias: -2.0}] or [[[10, 45], -2.0]]."
    )

    @field_validator("sequence_bias", mode="before")
    @classmethod
    def _from_mapping(cls, value: Any) -> Any:
        # transformers' older dict form: {(10, 45): -2.0}
        if isinstance(value, dict):
            return [{"tokens": list(k) if isinstance(k, (list, tuple)) else [k], "bias": v} for k, v in value.items()]
        return value

    @field_validator("sequence_bias")
    @classmethod
    def _distinct(cls, value: list[BiasedSequence]) -> list[BiasedSequence]:
        seen: set[tuple[int, ...]] = set()
        for entry in value:
            key = tuple(entry.tokens)
            if key in seen:
                raise ValueError(f"sequence {list(key)} is listed twice; give each sequence one bias")
            seen.add(key)
        return value


class SequenceBias(Processor):
    """Add a bias to the token that would complete a listed sequence (always, for one-token sequences)."""

    name = "sequence_bias"
    stage = Stage.LOGITS
    priority = 10
    Config = SequenceBiasConfig
    needs = frozenset({"input_ids"})

    def __init__(self, config: Any = None, tokens: Any = None) -> None:
        super().__init__(config, tokens)
        entries = self.config.sequence_bias
        self.table = SequenceTable([e.tokens for e in entries])
        self._bias = torch.tensor([e.bias for e in entries], dtype=torch.float32)
        self._biases: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}
        self._columns: dict[tuple[int, torch.device], tuple[torch.Tensor, torch.Tensor, int]] = {}

    @classmethod
    def token_ids(cls, config: Any) -> Iterable[tuple[str, int]]:
        for i, entry in enumerate(config.sequence_bias):
            yield from walk_token_ids(f"sequence_bias[{i}].tokens", entry.tokens)

    def columns(self, vocab: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(distinct in-vocab last tokens, each sequence's slot among them, their count), once per vocab and device.

        Out-of-vocab last tokens get the slot past the end, which is dropped:
        the model cannot emit them.
        """
        key = (vocab, device)
        if key not in self._columns:
            lasts = [seq[-1] for seq in self.table.sequences]
            kept = sorted({t for t in lasts if t < vocab})
            slot = {t: i for i, t in enumerate(kept)}
            self._columns[key] = (
                torch.tensor(kept, dtype=torch.long, device=device),
                torch.tensor([slot.get(t, len(kept)) for t in lasts], dtype=torch.long, device=device),
                len(kept),
            )
        return self._columns[key]

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        tokens, slots, count = self.columns(scores.shape[-1], scores.device)
        if count == 0:
            return scores
        hit, last = self.table.completing(ctx.input_ids)
        key = (scores.device, scores.dtype)
        biases = self._biases.get(key)
        if biases is None:
            # Rounded to the scores' dtype once, as the per-step cast rounded each bias.
            biases = self._biases[key] = self._bias.to(scores.device).to(scores.dtype)
        bias = torch.where(hit, biases, 0.0)
        if count == len(slots):
            # Every sequence ends on its own in-vocab token: no two biases meet, so one pass adds them.
            return scores.index_add(1, last, bias)
        # Sum the biases per token first (as transformers does), then add them in one out-of-place pass.
        per_token = torch.zeros(scores.shape[0], count + 1, dtype=scores.dtype, device=scores.device)
        per_token.index_add_(1, slots, bias)
        return scores.index_add(1, tokens, per_token[:, :count])


class BadWordsConfig(ProcessorConfig):
    bad_words_ids: list[TokenSequence] = Field(
        min_length=1, description="Token sequences that must never be generated, e.g. [[42], [7, 8]]."
    )

    @field_validator("bad_words_ids")
    @classmethod
    def _non_empty(cls, value: list[list[int]]) -> list[list[int]]:
        for i, seq in enumerate(value):
            if not seq:
                raise ValueError(f"entry {i} is empty; each banned sequence needs at least one token id")
        return value


class BadWords(Processor):
    """Ban the token that would complete any listed sequence; a lone eos id in the list is ignored."""

    name = "bad_words_ids"
    stage = Stage.LOGITS
    priority = 60
    Config = BadWordsConfig
    needs = frozenset({"input_ids"})
    token_id_fields = ("bad_words_ids",)

    def __init__(self, config: Any = None, tokens: Any = None) -> None:
        super().__init__(config, tokens)
        # As in transformers: banning eos alone would make stopping impossible, so it is dropped.
        eos = {(e,) for e in eos_ids(self.tokens)}
        kept = [seq for seq in self.config.bad_words_ids if tuple(seq) not in eos]
        self.table = SequenceTable(kept)

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if not self.table.sequences:
            return scores
        hit, last = self.table.completing(ctx.input_ids)
        return ban_tokens(scores, last.expand_as(hit), hit)


def register_processors(register: Callable[..., None]) -> None:
    register(SequenceBias)
    register(BadWords)
