"""Output constraints: JSON Schema, regex, Lark grammar and a choice of strings, backed by llguidance.

They run at the ``constraint`` stage, after the logits stage and before
temperature, so truncation and selection only ever choose among tokens the
constraint allows. Each row's parser is row state: it follows the row through
batches, beam forks and continuous batching. eos is allowed only where the
grammar can end, and once it is complete only eos is. A row that ends with
eos where its grammar is complete finishes with the ``constraint`` reason.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from pydantic import Field, field_validator

from logitkit import (
    EmptyRowError,
    NewRows,
    Processor,
    ProcessorConfig,
    RowState,
    Stage,
    StepContext,
)
from logitkit.fastpath import CandidateView
from logitkit_builtins import _llguidance as backend


class JsonSchemaConfig(ProcessorConfig):
    json_schema: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="The JSON Schema the output must satisfy; the default allows any JSON object.",
    )
    whitespace: bool = Field(
        default=False,
        description="Allow whitespace between JSON tokens; off by default, so output uses compact separators.",
    )

    @field_validator("json_schema")
    @classmethod
    def _enforceable(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            backend.check_grammar(backend.json_schema_grammar(value, whitespace=False))
        except ValueError as exc:
            raise ValueError(f"schema not enforceable: {exc}") from None
        return value


class RegexConfig(ProcessorConfig):
    regex: str = Field(description="A regular expression (Rust regex syntax) the whole output must match.")

    @field_validator("regex")
    @classmethod
    def _valid(cls, value: str) -> str:
        backend.check_grammar(backend.regex_grammar(value), positions=False)
        return value


class GrammarConfig(ProcessorConfig):
    grammar: str = Field(description="A grammar in llguidance's Lark syntax; the output must derive from `start`.")

    @field_validator("grammar")
    @classmethod
    def _valid(cls, value: str) -> str:
        backend.check_grammar(backend.lark_grammar(value))
        return value


class ChoiceConfig(ProcessorConfig):
    choice: list[str] = Field(min_length=1, description="The output is exactly one of these strings.")

    @field_validator("choice")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if any(not c for c in value):
            raise ValueError("choices must be non-empty strings")
        return value


class ConstraintProcessor(Processor):
    """Base: allow only the tokens each row's llguidance parser accepts next."""

    stage = Stage.CONSTRAINT
    needs = frozenset({"tokenizer"})
    # The parser is per row; the mask never reads steps or prompt lengths.
    mixed_rows = True
    #: What the constraint is, for error messages ("schema", "regex", ...).
    kind: ClassVar[str] = "constraint"

    def __init__(self, config: Any = None, tokens: Any = None) -> None:
        super().__init__(config, tokens)
        self.grammar = self.build_grammar()

    def build_grammar(self) -> str:
        raise NotImplementedError

    def init_rows(self, rows: NewRows) -> RowState | None:
        # The prompt never counts: a parser starts with the first generated token.
        return {"parser": [backend.RowMatcher(self.grammar) for _ in range(rows.count)]}

    def accept(self, state: RowState, tokens: torch.Tensor) -> None:
        for parser, token in zip(state["parser"], tokens.tolist(), strict=True):
            parser.accept(int(token))

    def clone_row(self, item: Any) -> Any:
        return item.fork()

    def complete_rows(self, state: RowState) -> torch.Tensor | None:
        # The grammar can end here: eos now finishes the row with the ``constraint`` reason.
        return torch.tensor([parser.complete() for parser in state["parser"]], dtype=torch.bool)

    def _matchers(self, ctx: StepContext) -> tuple[list[Any], Any]:
        """Each row's ready llguidance matcher, and the llguidance tokenizer; a broken row is an error."""
        state = ctx.row_state(self)
        if state is None:
            raise RuntimeError(f"{self.name}: no row state (run it through a pipeline)")
        if ctx.tokenizer is None:
            raise ValueError(f"{self.name} needs a tokenizer: pass tokenizer= to the pipeline or to generate()")
        tokenizer = backend.ll_tokenizer(ctx.tokenizer, ctx.eos_token_ids or list(self.tokens.eos or []))
        matchers = [parser.ready(tokenizer) for parser in state["parser"]]
        broken = [(row, backend.matcher_error(m)) for row, m in enumerate(matchers) if m.is_error()]
        if broken:
            row, why = broken[0]
            raise EmptyRowError(f"{self.name}: row {row} left the {self.kind}: {why}")
        return matchers, tokenizer

    def _refuse_empty(self, empty: torch.Tensor) -> None:
        if bool(empty.any()):
            rows = empty.nonzero().flatten().tolist()
            raise EmptyRowError(
                f"{self.name}: rows {rows} have no token the {self.kind} allows left "
                f"(processors before it removed them all)"
            )

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        matchers, tokenizer = self._matchers(ctx)
        out, empty = backend.masked_scores(scores, backend.token_bitmask(matchers, tokenizer))
        self._refuse_empty(empty)
        return out

    # -- the fast path: behind a truncation, mask the candidate view, never the whole vocabulary --

    fused = "truncate"
    # It drops tokens anywhere in the order, so a partial view proves nothing about the rest;
    # ``fused_after_truncation`` keeps it behind a truncation, where the view is already complete.
    needs_complete_view = True
    fused_after_truncation = True

    def apply_sorted(self, view: CandidateView, ctx: StepContext) -> CandidateView:
        matchers, tokenizer = self._matchers(ctx)
        allowed = backend.allowed_ids(matchers, tokenizer, view.token_ids).to(view.values.device)
        # compact: the dropped candidates move behind the kept ones, so the order stays canonical.
        out = view.keep(allowed, compact=True)
        self._refuse_empty(~out.alive())
        return out


class JsonSchema(ConstraintProcessor):
    """Constrain the output to JSON that satisfies a JSON Schema (any JSON object by default)."""

    name = "json_schema"
    priority = 10
    Config = JsonSchemaConfig
    kind = "schema"

    def build_grammar(self) -> str:
        return backend.json_schema_grammar(self.config.json_schema, self.config.whitespace)


class Regex(ConstraintProcessor):
    """Constrain the output to match a regular expression in full."""

    name = "regex"
    priority = 20
    Config = RegexConfig
    kind = "regex"

    def build_grammar(self) -> str:
        return backend.regex_grammar(self.config.regex)


class Grammar(ConstraintProcessor):
    """Constrain the output to a context-free grammar in Lark syntax."""

    name = "grammar"
    priority = 30
    Config = GrammarConfig
    kind = "grammar"

    def build_grammar(self) -> str:
        return backend.lark_grammar(self.config.grammar)


class Choice(ConstraintProcessor):
    """Constrain the output to exactly one of a list of strings."""

    name = "choice"
    priority = 40
    Config = ChoiceConfig
    kind = "choice"

    def build_grammar(self) -> str:
        return backend.choice_grammar(self.config.choice)


def register_processors(register: Callable[..., None]) -> None:
    for cls in (JsonSchema, Regex, Grammar, Choice):
        register(cls)
