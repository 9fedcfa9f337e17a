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


def allowed_tokens(matchers: Sequence[LLMatcher], tokenizer: LLTokenizer, vocab: int) -> torch.Tensor:
    """Bool ``[rows, min(tokenizer vocab, vocab)]``: the tokens each matcher allows next.

    Columns past the result (a model's padded embedding rows) are never allowed.
    """
    rows, own = len(matchers), int(tokenizer.vocab_size)
    bitmask = token_bitmask(matchers, tokenizer)
    return ((bitmask.unsqueeze(-1) >> _BITS) & 1).reshape(rows, -1)[:, : min(own, vocab)].bool()


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


def constrain(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """``scores`` with every token outside ``allowed`` ([rows, <= vocab]) at -inf, out of place."""
    own = allowed.shape[1]
    kept = scores[:, :own].masked_fill(~allowed.to(scores.device), float("-inf"))
    if own == scores.shape[1]:
        return kept
    return torch.cat([kept, scores.new_full((scores.shape[0], scores.shape[1] - own), float("-inf"))], dim=1)


def matcher_error(matcher: LLMatcher) -> str | None:
    return one_line(matcher.get_error()) if matcher.is_error() else None
