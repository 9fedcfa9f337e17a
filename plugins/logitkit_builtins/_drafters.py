"""Where speculative decoding's draft tokens come from: the prompt itself, a small model, the model's own first layers.

A drafter proposes up to ``limit`` tokens per row (``Draft``), then learns
how many the target kept (``settle``): it cuts its cache back to the kept
columns and, for the assistant schedules, adapts how many it drafts next.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from logitkit_builtins._spec_models import ChunkedLM

Schedule = Literal["constant", "heuristic", "heuristic_transient"]


@dataclass
class Draft:
    """``tokens`` [rows, k]; ``lengths`` [rows]: how many of them each row proposes.

    ``probs`` [rows, k, vocab] is the distribution each token was drawn from
    (sampling with a model), or None for tokens proposed without one
    (prompt lookup, greedy drafting, another tokenizer).
    """

    tokens: torch.Tensor
    lengths: torch.Tensor
    probs: torch.Tensor | None = None

    @classmethod
    def empty(cls, rows: int, device: torch.device) -> Draft:
        return cls(
            torch.zeros(rows, 0, dtype=torch.long, device=device),
            torch.zeros(rows, dtype=torch.long, device=device),
        )


class DraftScorer(Protocol):
    """The pipeline's processors on a draft model's logits, for a row history that grows with each draft."""

    def scores(self, logits: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor: ...

    def accept(self, tokens: torch.Tensor) -> None: ...


class Drafter(Protocol):
    def draft(
        self, sequences: torch.Tensor, mask: torch.Tensor, limit: int, scorer: DraftScorer,
        generator: torch.Generator | None, sampling: bool,
    ) -> Draft: ...  # fmt: skip

    def settle(self, kept: int, matched: int, drafted: int) -> None:
        """The target kept ``kept`` columns; ``matched`` of ``drafted`` proposals were accepted."""

    def finish(self) -> None:
        """The generation ended."""


class PromptLookup:
    """transformers' prompt lookup: continue the latest n-gram the way its earliest earlier occurrence went on."""

    def __init__(self, num_tokens: int, max_ngram: int, eos: tuple[int, ...]) -> None:
        self.num_tokens = num_tokens
        self.max_ngram = max_ngram
        self.eos = eos

    def _row(self, row: torch.Tensor, limit: int) -> torch.Tensor:
        length = int(row.shape[0])
        for size in range(min(self.max_ngram, length - 1), 0, -1):
            windows = row.unfold(0, size, 1)
            hits = (windows == row[-size:]).all(dim=1).nonzero().flatten()
            for start in (hits + size).tolist():
                end = min(start + min(self.num_tokens, limit), length)
                if start < end:
                    chosen = row[start:end]
                    if self.eos:
                        at_eos = torch.isin(chosen, torch.tensor(self.eos, device=row.device)).nonzero()
                        if at_eos.numel():
                            chosen = chosen[: int(at_eos[0])]
                    return chosen
        return row[:0]

    def draft(
        self, sequences: torch.Tensor, mask: torch.Tensor, limit: int, scorer: DraftScorer,
        generator: torch.Generator | None, sampling: bool,
    ) -> Draft:  # fmt: skip
        rows = []
        for i in range(sequences.shape[0]):
            own = sequences[i][mask[i].bool()]  # the row's own tokens, not the batch padding
            rows.append(self._row(own, limit))
        width = max((int(r.shape[0]) for r in rows), default=0)
        tokens = sequences.new_zeros(sequences.shape[0], width)
        for i, r in enumerate(rows):
            tokens[i, : r.shape[0]] = r
        lengths = torch.tensor([int(r.shape[0]) for r in rows], device=sequences.device)
        return Draft(tokens, lengths)

    def settle(self, kept: int, matched: int, drafted: int) -> None:
        pass

    def finish(self) -> None:
        pass


class ModelDrafter:
    """Draft with a (smaller) model sharing the target's tokenizer: an assistant, or the target's first layers.

    ``schedule`` as transformers: ``constant`` keeps ``num_tokens``;
    ``heuristic`` adds 2 after a round where every draft was accepted and
    takes 1 away otherwise, and writes the value back to the assistant's
    generation config at the end; ``heuristic_transient`` adapts within the
    call only. A row stops drafting after a token whose draft probability
    is below ``confidence`` (transformers' ``assistant_confidence_threshold``).
    """

    def __init__(
        self,
        model: Any,
        num_tokens: int,
        schedule: Schedule,
        confidence: float,
        *,
        layers: int | None = None,
        padded: bool = True,
    ) -> None:
        self.lm = ChunkedLM(model, layers=layers, padded=padded)
        self.model = model
        self.num_tokens = float(num_tokens)
        self.schedule = schedule
        self.confidence = confidence

    def draft(
        self, sequences: torch.Tensor, mask: torch.Tensor, limit: int, scorer: DraftScorer,
        generator: torch.Generator | None, sampling: bool,
    ) -> Draft:  # fmt: skip
        rows = int(sequences.shape[0])
        wanted = min(int(self.num_tokens), limit)
        if wanted <= 0:
            return Draft.empty(rows, sequences.device)
        logits = self.lm.extend(sequences, mask)[:, -1]
        tokens: list[torch.Tensor] = []
        probs: list[torch.Tensor] = []
        lengths = torch.zeros(rows, dtype=torch.long, device=sequences.device)
        open_rows = torch.ones(rows, dtype=torch.bool, device=sequences.device)
        seq = sequences
        for step in range(wanted):
            q = torch.nn.functional.softmax(scorer.scores(logits, seq), dim=-1)
            if sampling:
                token = torch.multinomial(q, 1, generator=generator).squeeze(1)
            else:
                token = q.argmax(dim=-1)
            tokens.append(token)
            probs.append(q)
            lengths = lengths + open_rows.long()
            chosen_prob = q.gather(1, token[:, None]).squeeze(1)
            open_rows = open_rows & (chosen_prob >= self.confidence)
            if step + 1 == wanted or not bool(open_rows.any()):
                break
            scorer.accept(token)
            seq = torch.cat([seq, token[:, None]], dim=1)
            mask = torch.cat([mask, mask.new_ones(rows, 1)], dim=1)
            logits = self.lm.extend(seq, mask)[:, -1]
        return Draft(torch.stack(tokens, dim=1), lengths, torch.stack(probs, dim=1) if sampling else None)

    def settle(self, kept: int, matched: int, drafted: int) -> None:
        self.lm.crop(kept)
        if self.schedule != "constant" and drafted:
            if matched == drafted:
                self.num_tokens += 2
            else:
                self.num_tokens = max(1.0, self.num_tokens - 1)

    def finish(self) -> None:
        config = getattr(self.model, "generation_config", None)
        if self.schedule == "heuristic" and config is not None:
            config.num_assistant_tokens = int(self.num_tokens)
