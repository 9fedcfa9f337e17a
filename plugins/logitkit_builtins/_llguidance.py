"""The llguidance backend of the constraint processors: grammars, tokenizers, matchers, batch masks.

Kept apart from the processors so the backend's quirks live in one place:
its multi-line errors, its two tokenizer entry points, and its bitmask layout.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from llguidance import LLExecutor, LLMatcher, LLTokenizer
from llguidance.torch import allocate_token_bitmask, fill_next_token_bitmask_par

_BITS = torch.arange(32, dtype=torch.int32)


_POSITION = re.compile(r"^(?:at )?(\d+)\((\d+)\):\s*")


def one_line(message: str, positions: bool = True) -> str:
    """llguidance's error, reduced to one line: its headline plus the ``error:`` detail, no source excerpts.

    ``positions=False`` drops llguidance's ``line(column)`` prefix, which then
    points into a grammar it generated (from a regex), not into the user's text.
    """
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "rejected by llguidance"
    head = lines[0].rstrip(":")
    where = _POSITION.match(head)
    if where:
        head = head[where.end() :]
        if positions:
            head = f"line {where.group(1)}, column {where.group(2)}: {head}"
    detail = next((line[len("error:") :].strip() for line in lines[1:] if line.startswith("error:")), "")
    if ": regex parse error" in head:
        head = head.split(": regex parse error")[0]
    return f"{head}: {detail}" if detail else head


def check_grammar(grammar: str, positions: bool = True) -> None:
    """Raise ``ValueError`` with one line when llguidance rejects ``grammar``."""
    problem = LLMatcher.validate_grammar(grammar)
    if problem:
        raise ValueError(one_line(problem, positions))


def json_schema_grammar(schema: dict[str, Any], whitespace: bool) -> str:
    # Compact separators by default: with flexible whitespace small models loop on newlines.
    options: dict[str, Any] = {"whitespace_flexible": whitespace}
    if not whitespace:
        options.update(item_separator=",", key_separator=":")
    return LLMatcher.grammar_from_json_schema(schema, overrides=options)  # type: ignore[arg-type]


def regex_grammar(pattern: str) -> str:
    return LLMatcher.grammar_from_regex(pattern)


def lark_grammar(source: str) -> str:
    return LLMatcher.grammar_from_lark(source)


def choice_grammar(choices: Sequence[str]) -> str:
    # JSON string literals are valid Lark string literals, escapes included.
    return lark_grammar("start: " + " | ".join(json.dumps(c) for c in choices))


# -- tokenizers ------------------------------------------------------------------------

_tokenizer_lock = threading.Lock()
#: id(tokenizer) -> (tokenizer kept alive so the id stays unique, eos ids, llguidance tokenizer).
_tokenizers: dict[int, tuple[Any, tuple[int, ...], LLTokenizer]] = {}


def _unwrap(tokenizer: Any) -> Any:
    """A ``TextCodec`` (the CLI's) holds the real tokenizer."""
    inner = getattr(tokenizer, "tokenizer", None)
    return inner if inner is not None and hasattr(tokenizer, "eos_ids") else tokenizer


def ll_tokenizer(tokenizer: Any, eos: Sequence[int]) -> LLTokenizer:
    """llguidance's view of ``tokenizer`` (a transformers fast tokenizer or a raw ``tokenizers.Tokenizer``).

    Building one reads the whole vocabulary, so it is made once per tokenizer
    object and eos set, under a lock (pipelines are shared across threads).
    """
    tokenizer = _unwrap(tokenizer)
    key, eos_key = id(tokenizer), tuple(eos)
    with _tokenizer_lock:
        cached = _tokenizers.get(key)
        if cached is not None and cached[0] is tokenizer and cached[1] == eos_key:
            return cached[2]
        built = _build_tokenizer(tokenizer, list(eos))
        _tokenizers[key] = (tokenizer, eos_key, built)
        return built


def _build_tokenizer(tokenizer: Any, eos: list[int]) -> LLTokenizer:
    eos_arg: list[int] | None = eos or None
    if hasattr(tokenizer, "backend_tokenizer"):  # transformers' PreTrainedTokenizerFast
        import llguidance.hf

        return llguidance.hf.from_tokenizer(tokenizer, eos_token=eos_arg)
    if hasattr(tokenizer, "to_str") and hasattr(tokenizer, "encode_batch"):  # tokenizers.Tokenizer
        return LLTokenizer(tokenizer.to_str(), eos_token=eos_arg)
    raise TypeError(
        f"the constraint processors need a transformers fast tokenizer or a tokenizers.Tokenizer, "
        f"not {type(tokenizer).__name__}"
    )


# -- matchers --------------------------------------------------------------------------


@dataclass
class RowMatcher:
    """One row's parser. Created on the first step that has a tokenizer; tokens accepted before wait in ``pending``."""

    grammar: str
    matcher: LLMatcher | None = None
    pending: list[int] = field(default_factory=list)

    def ready(self, tokenizer: LLTokenizer) -> LLMatcher:
        if self.matcher is None:
            self.matcher = LLMatcher(tokenizer, self.grammar, log_level=0)
            for token in self.pending:
                self._consume(self.matcher, token)
            self.pending = []
        return self.matcher

    def accept(self, token: int) -> None:
        if self.matcher is None:
            self.pending.append(token)
        else:
            self._consume(self.matcher, token)

    @staticmethod
    def _consume(matcher: LLMatcher, token: int) -> None:
        # A finished grammar has emitted eos; whatever a host feeds a finished row after that is padding.
        if not matcher.is_stopped() and not matcher.is_error():
            matcher.consume_token(token)

    def complete(self) -> bool:
        """The output so far derives from the grammar in full: the row may end here."""
        m = self.matcher
        return m is not None and not m.is_error() and bool(m.is_accepting())

    def fork(self) -> RowMatcher:
        copy = self.matcher.deep_copy() if self.matcher is not None else None
        return RowMatcher(self.grammar, copy, list(self.pending))


_executor_lock = threading.Lock()
_executor: LLExecutor | None = None


def executor() -> LLExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = LLExecutor()
        return _executor


def token_bitmask(matchers: Sequence[LLMatcher], tokenizer: LLTokenizer) -> torch.Tensor:
    """int32 ``[rows, ceil(tokenizer vocab / 32)]``: bit ``t % 32`` of word ``t // 32`` says token ``t`` is allowed.

    The masks of the whole batch are filled in one llguidance call (its thread
    pool), never row by row in Python.
    """
    bitmask = allocate_token_bitmask(len(matchers), int(tokenizer.vocab_size))
    fill_next_token_bitmask_par(executor(), [(m, i) for i, m in enumerate(matchers)], bitmask)
    return bitmask


def allowed_ids(matchers: Sequence[LLMatcher], tokenizer: LLTokenizer, ids: torch.Tensor) -> torch.Tensor:
    """Bool, shaped like ``ids`` ([rows, m] token ids): whether each row's matcher allows each id next.

    Reads only the bits of the given ids, so a candidate view is masked without
    unpacking the whole vocabulary; ids past the tokenizer's vocabulary are never allowed.
    """
    own = int(tokenizer.vocab_size)
    bitmask = token_bitmask(matchers, tokenizer)
    ids = ids.to(torch.int64).cpu()
    inside = ids < own
    safe = torch.where(inside, ids, 0)
    words = bitmask.gather(1, safe >> 5)
    return (((words >> (safe & 31).to(torch.int32)) & 1).bool() & inside)


def _listed(words: np.ndarray, pick: np.ndarray, bit: int, own: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, ids)`` of the tokens below ``own`` whose bit is ``bit``, in the words where ``pick`` is True.

    numpy on the (host) bitmask: these few small steps cost half as much as in torch.
    """
    rows, word = np.nonzero(pick)
    bits = np.unpackbits(words[rows, word].view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")
    ids = word[:, None] * 32 + np.arange(32)
    chosen = (bits == bit) & (ids < own)
    return np.broadcast_to(rows[:, None], ids.shape)[chosen], ids[chosen]


def masked_scores(scores: torch.Tensor, bitmask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``scores`` with every token ``bitmask`` forbids at -inf, out of place, and the rows left empty ([rows] bool).

    The work follows the smaller side, never the whole bitmask unpacked: where
    most tokens are allowed (inside a JSON string) the scores are copied and
    the few forbidden ones written; where few are (between JSON tokens) only
    those are copied into a -inf row. Columns past the bitmask (a model's
    padded embedding rows) are -inf. A NaN score that is allowed stays NaN.
    """
    batch, width = scores.shape
    own = min(bitmask.shape[1] * 32, width)
    # llguidance's bitmask lives on the host; only the token lists go to the scores' device.
    words = bitmask[:, : (own + 31) // 32].cpu().numpy()
    partial = words != -1  # a word with a forbidden token
    some = words != 0  # a word with an allowed token
    device = scores.device
    if np.count_nonzero(partial) <= np.count_nonzero(some):
        out = scores.clone()
        out[:, own:] = float("-inf")
        rows, ids = (torch.from_numpy(a).to(device) for a in _listed(words, partial, 0, own))
        out[rows, ids] = float("-inf")
        return out, out.amax(dim=-1) == float("-inf")
    out = torch.full_like(scores, float("-inf"))
    rows, ids = (torch.from_numpy(a).to(device) for a in _listed(words, some, 1, own))
    values = scores[rows, ids]
    out[rows, ids] = values
    alive = torch.zeros(batch, dtype=torch.bool, device=device)
    alive[rows[values != float("-inf")]] = True
    return out, ~alive


def matcher_error(matcher: LLMatcher) -> str | None:
    return one_line(matcher.get_error()) if matcher.is_error() else None
