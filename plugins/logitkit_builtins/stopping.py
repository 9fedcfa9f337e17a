"""Stopping criteria: length limits, a time limit, end-of-sequence ids and stop strings."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from logitkit.stopping import StopContext, StoppingCriterion
from logitkit.tokenbytes import token_bytes


class MaxNewTokens(StoppingCriterion):
    """Stop every row once it has ``max_new_tokens`` generated tokens."""

    name = "max_new_tokens"
    reason = "length"
    priority = 30

    def __init__(self, limit: int) -> None:
        self.limit = limit

    @classmethod
    def from_settings(cls, context: StopContext) -> MaxNewTokens | None:
        limit = context.settings.max_new_tokens
        return None if limit is None else cls(limit)

    def check(self, sequences: torch.Tensor, step: int) -> torch.Tensor | None:
        if step < self.limit:
            return None
        return torch.ones(sequences.shape[0], dtype=torch.bool, device=sequences.device)


class MaxLength(StoppingCriterion):
    """Stop every row at the total length limit (prompt included); always on, as in transformers."""

    name = "max_length"
    reason = "length"
    priority = 31

    def __init__(self, limit: int) -> None:
        self.limit = limit

    @classmethod
    def from_settings(cls, context: StopContext) -> MaxLength:
        # The effective limit: max_length, prompt + max_new_tokens, or the default of 20.
        return cls(context.max_length)

    def check(self, sequences: torch.Tensor, step: int) -> torch.Tensor | None:
        if sequences.shape[-1] < self.limit:
            return None
        return torch.ones(sequences.shape[0], dtype=torch.bool, device=sequences.device)


class MaxTime(StoppingCriterion):
    """Stop every row once ``max_time`` seconds have passed since generation began."""

    name = "max_time"
    reason = "time"
    priority = 40

    def __init__(self, seconds: float, start: float) -> None:
        self.seconds = seconds
        self.start = start

    @classmethod
    def from_settings(cls, context: StopContext) -> MaxTime | None:
        seconds = context.settings.max_time
        return None if seconds is None else cls(seconds, context.start_time)

    def check(self, sequences: torch.Tensor, step: int) -> torch.Tensor | None:
        if time.monotonic() - self.start <= self.seconds:
            return None  # transformers' MaxTimeCriteria stops once the elapsed time is strictly longer
        return torch.ones(sequences.shape[0], dtype=torch.bool, device=sequences.device)


class EndOfSequence(StoppingCriterion):
    """Stop a row when its newest token is one of the eos ids (one id or several)."""

    name = "eos"
    reason = "eos"
    priority = 10

    def __init__(self, eos: tuple[int, ...]) -> None:
        self.eos = torch.tensor(eos, dtype=torch.long)

    @classmethod
    def from_settings(cls, context: StopContext) -> EndOfSequence | None:
        return cls(context.eos) if context.eos else None

    def check(self, sequences: torch.Tensor, step: int) -> torch.Tensor | None:
        if step < 1:
            return None
        if self.eos.device != sequences.device:
            self.eos = self.eos.to(sequences.device)
        return torch.isin(sequences[:, -1], self.eos)


class StopStrings(StoppingCriterion):
    """Stop a row when a stop string ends inside its newest token, matched on bytes.

    Each step joins the bytes of the row's last few tokens (enough to hold the
    longest stop string) and looks for a stop string that overlaps the newest
    token. Matching bytes rather than per-token strings finds a stop string
    split across tokens, even when a token holds only part of a UTF-8
    character (CJK with byte-level BPE). Needs a tokenizer.
    """

    name = "stop_strings"
    reason = "stop_string"
    priority = 20

    def __init__(self, stops: list[str], tokenizer: object, prompt_length: int) -> None:
        self.stops = [s.encode("utf-8") for s in stops]
        self.table = token_bytes(tokenizer)
        self.prompt_length = prompt_length
        # Every token with bytes holds at least one, so this many tokens cover the longest stop string.
        self.window = max(len(s) for s in self.stops)

    @classmethod
    def from_settings(cls, context: StopContext) -> StopStrings | None:
        stops = context.settings.stop_strings
        if not stops:
            return None
        return cls(list(stops), context.tokenizer, context.prompt_length)

    def _row_hit(self, ids: list[int]) -> bool:
        table = self.table
        pieces = [table[i] if 0 <= i < len(table) else b"" for i in ids]
        newest = len(pieces[-1])
        if not newest:
            return False
        text = b"".join(pieces)
        for stop in self.stops:
            # Only occurrences that end inside the newest token are new.
            start = max(0, len(text) - newest - len(stop) + 1)
            if text.find(stop, start) != -1:
                return True
        return False

    def check(self, sequences: torch.Tensor, step: int) -> torch.Tensor | None:
        if step < 1:
            return None
        tail = sequences[
            :, -self.window :
        ].tolist()  # one host copy per step, only when stop strings are set
        hits = [self._row_hit(ids) for ids in tail]
        if not any(hits):
            return None
        return torch.tensor(hits, dtype=torch.bool, device=sequences.device)


def register_stopping_criteria(register: Callable[..., None]) -> None:
    for cls in (EndOfSequence, StopStrings, MaxNewTokens, MaxLength, MaxTime):
        register(cls)
