"""Universal assisted decoding: an assistant with its own tokenizer drafts text, re-encoded for the target.

Per row, the assistant keeps its own ids for the row's text. Each round the
target's new tokens are decoded and, with the text of the assistant's last
``assistant_lookbehind`` tokens, re-encoded by the assistant's tokenizer
(a token boundary may move). The assistant drafts greedily; the drafted text
is appended to the text of the target's last ``target_lookbehind`` tokens
and re-encoded by the target's tokenizer: where that re-encoding starts with
those same tokens, the rest is the draft. The drafts carry no distribution
in the target's vocabulary, so sampling verifies them by the match rule.
"""

from __future__ import annotations

from typing import Any

import torch

from logitkit_builtins._drafters import Draft, DraftScorer
from logitkit_builtins._spec_models import ChunkedLM


def encode(tokenizer: Any, text: str) -> list[int]:
    """Ids without special tokens, from a ``tokenizers.Tokenizer`` or a transformers tokenizer."""
    encoded = tokenizer.encode(text, add_special_tokens=False)
    return list(getattr(encoded, "ids", encoded))


def decode(tokenizer: Any, ids: list[int]) -> str:
    return str(tokenizer.decode(ids, skip_special_tokens=True))


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _device(model: Any, fallback: torch.device) -> torch.device:
    """Where the assistant's inputs go: its parameters' device, or the target's for a plain callable."""
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        for parameter in parameters():
            return torch.device(parameter.device)
    return fallback


class _Row:
    """One row's assistant ids, the target tokens they cover, and the assistant's cache."""

    def __init__(self, model: Any) -> None:
        self.lm = ChunkedLM(model, padded=False)
        self.ids: list[int] = []
        self.fed: list[int] = []
        self.target_seen = 0


class UniversalDrafter:
    def __init__(
        self,
        model: Any,
        target_tokenizer: Any,
        assistant_tokenizer: Any,
        *,
        num_tokens: int,
        confidence: float,
        assistant_lookbehind: int,
        target_lookbehind: int,
    ) -> None:
        self.model = model
        self.target_tokenizer = target_tokenizer
        self.assistant_tokenizer = assistant_tokenizer
        self.num_tokens = num_tokens
        self.confidence = confidence
        self.assistant_lookbehind = assistant_lookbehind
        self.target_lookbehind = target_lookbehind
        self.rows: list[_Row] = []

    def _sync(self, row: _Row, own: list[int]) -> None:
        """Bring the row's assistant ids up to the target's tokens ``own``."""
        if not row.ids:
            row.ids = encode(self.assistant_tokenizer, decode(self.target_tokenizer, own))
        else:
            before = decode(self.target_tokenizer, own[: row.target_seen])
            new_text = decode(self.target_tokenizer, own)[len(before) :]
            tail = row.ids[-self.assistant_lookbehind :]
            head = row.ids[: len(row.ids) - len(tail)]
            row.ids = head + encode(self.assistant_tokenizer, decode(self.assistant_tokenizer, tail) + new_text)
        row.target_seen = len(own)

    def _assistant_logits(self, row: _Row, ids: list[int], device: torch.device) -> torch.Tensor:
        keep = min(common_prefix(row.fed, ids), len(ids) - 1)
        row.lm.crop(keep)
        row.fed = row.fed[:keep]
        tensor = torch.tensor([ids], device=device)
        logits = row.lm.extend(tensor, torch.ones_like(tensor))[0, -1]
        row.fed = list(ids)
        return logits

    def _draft_row(self, row: _Row, own: list[int], limit: int, device: torch.device) -> list[int]:
        self._sync(row, own)
        if not row.ids:
            return []
        ids = list(row.ids)
        drafted: list[int] = []
        for _ in range(self.num_tokens):
            probs = torch.nn.functional.softmax(self._assistant_logits(row, ids, device), dim=-1)
            token = int(probs.argmax())
            drafted.append(token)
            ids.append(token)
            if float(probs[token]) < self.confidence:
                break
        context_text = decode(self.assistant_tokenizer, row.ids)
        drafted_text = decode(self.assistant_tokenizer, ids)[len(context_text) :]
        tail = own[-self.target_lookbehind :]
        encoded = encode(self.target_tokenizer, decode(self.target_tokenizer, tail) + drafted_text)
        if encoded[: len(tail)] != tail:
            return []  # the drafted text would re-tokenize tokens already emitted
        return encoded[len(tail) :][:limit]

    def draft(
        self, sequences: torch.Tensor, mask: torch.Tensor, limit: int, scorer: DraftScorer,
        generator: torch.Generator | None, sampling: bool,
    ) -> Draft:  # fmt: skip
        count = int(sequences.shape[0])
        while len(self.rows) < count:
            self.rows.append(_Row(self.model))
        device = _device(self.model, sequences.device)
        drafts = [
            self._draft_row(self.rows[i], sequences[i][mask[i].bool()].tolist(), limit, device)
            for i in range(count)
        ]
        width = max((len(d) for d in drafts), default=0)
        tokens = sequences.new_zeros(count, width)
        for i, d in enumerate(drafts):
            tokens[i, : len(d)] = torch.tensor(d, dtype=torch.long, device=tokens.device)
        lengths = torch.tensor([len(d) for d in drafts], device=sequences.device)
        return Draft(tokens, lengths)

    def settle(self, kept: int, matched: int, drafted: int) -> None:
        pass  # each row re-syncs from the target's tokens at its next draft

    def finish(self) -> None:
        pass
