"""Speculative decoding as search strategies: draft several tokens cheaply, verify them in one target pass.

Four drafters share one loop (``speculate``): ``prompt_lookup``,
``assisted`` (a smaller model), ``early_exit`` (the model's own first
layers) and ``universal_assisted`` (a smaller model with another tokenizer).
Each round the target model scores every drafted position at once; the
pipeline's processors run on the target's logits at each position, on a
fork of the batch state that has accepted the drafts before it, so
stateful processors see exactly the history plain decoding would give
them. The kept tokens are then accepted on the real state one by one.

Rows advance together: a round emits, for every row, the fewest tokens any
running row kept plus one. Greedy output is therefore identical to plain
greedy decoding at any batch size, and sampling keeps the target's
distribution (``_verify``). transformers runs assisted decoding at batch 1 only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from logitkit.config import validation_problems
from logitkit.decoding import DecodingJob, DecodingState, GenerationOutput
from logitkit.errors import ConfigError
from logitkit.processor import StepContext
from logitkit.state import BatchState
from logitkit_builtins import _verify
from logitkit_builtins._drafters import Draft, Drafter, ModelDrafter, PromptLookup, Schedule
from logitkit_builtins._spec_models import ChunkedLM, is_transformers_lm
from logitkit_builtins._universal import UniversalDrafter

SAMPLING_SELECTORS = {"sample", "multinomial"}

log = logging.getLogger("logitkit.speculative")
OptionsT = TypeVar("OptionsT", bound=BaseModel)


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PromptLookupOptions(_Options):
    #: transformers' prompt_lookup_num_tokens.
    num_tokens: int = Field(default=10, ge=1, le=1024)
    #: transformers' max_matching_ngram_size (its default is 2).
    max_ngram: int = Field(default=2, ge=1, le=64)


class AssistedOptions(_Options):
    #: Unset: the assistant's generation config, as transformers reads it (default 20).
    num_assistant_tokens: int | None = Field(default=None, ge=1, le=1024)
    num_assistant_tokens_schedule: Literal["constant", "heuristic", "heuristic_transient"] | None = None
    #: A row stops drafting after a token whose draft probability is below this (default 0.4).
    assistant_confidence_threshold: float | None = Field(default=None, ge=0, le=1)


class EarlyExitOptions(_Options):
    #: Draft with the model's first N decoder layers (transformers' assistant_early_exit).
    assistant_early_exit: int = Field(ge=1)
    num_assistant_tokens: int = Field(default=20, ge=1, le=1024)
    num_assistant_tokens_schedule: Literal["constant", "heuristic", "heuristic_transient"] = "constant"
    assistant_confidence_threshold: float = Field(default=0.4, ge=0, le=1)


class UniversalOptions(AssistedOptions):
    #: Trailing assistant tokens re-encoded each round (the rest of its cache is kept).
    assistant_lookbehind: int = Field(default=10, ge=1)
    #: Trailing target tokens re-encoded with the drafted text to find where the draft starts.
    target_lookbehind: int = Field(default=10, ge=1)


def _options(model: type[OptionsT], job: DecodingJob) -> OptionsT:
    """The strategy's options; keyword overrides to generate() are checked here, named like config errors."""
    try:
        return model.model_validate(job.settings.search_options)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc, model, "generate()", "generation.search_options")) from None


def _mode(job: DecodingJob) -> Literal["greedy", "sample"]:
    selector = job.pipeline.selector
    name = selector.name if selector is not None else "greedy"
    if name == "greedy":
        return "greedy"
    if name in SAMPLING_SELECTORS:
        return "sample"
    raise ValueError(
        f"speculative decoding verifies with greedy or sampled selection (sample, multinomial), not {name!r}"
    )


def _generator(job: DecodingJob) -> torch.Generator | None:
    """A seeded generator when the job has seeds (seed setting or seeds=), else torch's global RNG."""
    if job.seeds is None:
        return None
    generator = torch.Generator(device=job.input_ids.device)
    generator.manual_seed(int(job.seeds[0]) & 0x7FFF_FFFF_FFFF_FFFF)
    return generator


class _ForkScorer:
    """The processors on a draft model's logits, on a fork of the batch state that follows the drafts."""

    def __init__(self, job: DecodingJob, state: DecodingState) -> None:
        self.job = job
        self.state = state
        self.fork: BatchState | None = state.rows.fork() if job.pipeline.processors else None

    def scores(self, logits: torch.Tensor, sequences: torch.Tensor) -> torch.Tensor:
        if self.fork is None:
            return logits
        return self.job.pipeline.process(logits, _context(self.job, self.state, self.fork, sequences))

    def accept(self, tokens: torch.Tensor) -> None:
        if self.fork is not None:
            self.fork.accept(tokens)


def _context(job: DecodingJob, state: DecodingState, rows: BatchState, sequences: torch.Tensor) -> StepContext:
    length = int(sequences.shape[-1])
    state.reserve(length)
    return rows.context(
        sequences,
        attention_mask=state.attention_mask_buffer[:, :length],
        encoder_input_ids=state.encoder_input_ids,
        tokenizer=job.tokenizer,
        model=job.model,
    )


def _target(job: DecodingJob, state: DecodingState) -> ChunkedLM:
    runner: Any = job.runner
    if runner.is_encoder_decoder:
        raise ValueError("speculative decoding runs decoder-only models, not encoder-decoders")
    if hasattr(runner, "cache"):
        return ChunkedLM(runner.model, cache=runner.cache, length=state.length, padded=runner.padded)
    return ChunkedLM(runner.fn, length=state.length)


def speculate(job: DecodingJob, drafter: Drafter) -> GenerationOutput:
    """The shared loop: draft, verify every position in one target pass, emit, cut the caches back."""
    mode = _mode(job)
    settings = job.settings
    generator = _generator(job)
    state = job.start(expand=settings.num_return_sequences)
    target = _target(job, state)
    pipe = job.pipeline
    rows = state.sequence_buffer.shape[0]
    device = state.sequence_buffer.device
    book = job.step_book(state)
    head: torch.Tensor | None = state.logits  # the target's logits after the last column, when known
    finished = False
    rounds = drafted = kept_drafts = 0
    plain_argmax = mode == "greedy" and not pipe.processors and not settings.output_scores
    try:
        while not finished:
            length = state.length
            limit = job.max_length - length - 1  # room for the drafts plus the target's own token
            sequences = state.sequences
            mask = state.attention_mask
            scorer = _ForkScorer(job, state)
            draft = (
                drafter.draft(sequences, mask, limit, scorer, generator, mode == "sample")
                if limit > 0
                else Draft.empty(rows, device)
            )
            k = int(draft.tokens.shape[1])
            state.reserve(length + k)
            extended = torch.cat([sequences, draft.tokens], dim=1)
            parts = [head[:, None]] if head is not None else []
            if k or head is None:
                parts.append(target.extend(extended, state.attention_mask_buffer[:, : length + k]))
            logits = torch.cat(parts, dim=1)  # [rows, k + 1, vocab]: after the last column, then after each draft

            # The processors at every position, on a fork that accepts the drafts before it.
            processed: list[torch.Tensor] = []
            choices: list[torch.Tensor] = []
            if plain_argmax:  # no processor and greedy: every position's choice in one argmax
                choices = list(logits.argmax(dim=-1).unbind(1))
            verify = state.rows.fork() if not plain_argmax else state.rows
            for j in range(0 if plain_argmax else k + 1):
                if j:
                    verify.accept(draft.tokens[:, j - 1])
                ctx = _context(job, state, verify, extended[:, : length + j])
                if mode == "greedy":
                    token, scores = job.choose(logits[:, j], ctx, keep_scores=settings.output_scores)
                    choices.append(token)
                    if scores is not None:
                        processed.append(scores)
                else:
                    processed.append(pipe.process(logits[:, j], ctx))
            if mode == "greedy":
                verdict = _verify.greedy(torch.stack(choices, dim=1), draft)
            else:
                probs = torch.nn.functional.softmax(torch.stack(processed, dim=1), dim=-1)
                verdict = _verify.sampled(probs, draft, generator)

            running = book.running()
            n = int(verdict.accepted[running].min()) if bool(running.any()) else 0
            for i in range(n + 1):
                if book.commit(verdict.tokens[:, i], processed[i] if settings.output_scores else None, logits[:, i]):
                    finished = True
                    break
            # Both caches keep the columns the drafts share with the emitted tokens.
            kept = length + n
            target.crop(kept)
            drafter.settle(kept, n, k)
            head = None
            rounds, drafted, kept_drafts = rounds + 1, drafted + k, kept_drafts + n
    finally:
        drafter.finish()
    # The figures the bench and the tests read: how much each target pass did.
    log.debug("speculative: %d rounds, %d drafted, %d kept", rounds, drafted, kept_drafts)
    return book.output()


def _assistant(job: DecodingJob, what: str) -> Any:
    model = job.extra.get("assistant_model")
    if model is None:
        raise ValueError(f"{what} needs an assistant model: pass assistant_model= to logitkit.generate()")
    return model


def _assistant_setting(model: Any, name: str, given: Any, default: Any) -> Any:
    """An option as transformers reads it: given here, else the assistant's own generation config."""
    if given is not None:
        return given
    value = getattr(getattr(model, "generation_config", None), name, None)
    return default if value is None else value


def _model_drafter(model: Any, options: AssistedOptions, padded: bool) -> ModelDrafter:
    schedule: Schedule = _assistant_setting(
        model, "num_assistant_tokens_schedule", options.num_assistant_tokens_schedule, "constant"
    )
    return ModelDrafter(
        model,
        _assistant_setting(model, "num_assistant_tokens", options.num_assistant_tokens, 20),
        schedule,
        _assistant_setting(model, "assistant_confidence_threshold", options.assistant_confidence_threshold, 0.4),
        padded=padded,
    )


def _padded(job: DecodingJob) -> bool:
    return not bool(job.attention_mask.all())


def prompt_lookup(job: DecodingJob) -> GenerationOutput:
    options = _options(PromptLookupOptions, job)
    return speculate(job, PromptLookup(options.num_tokens, options.max_ngram, job.eos))


prompt_lookup.Config = PromptLookupOptions  # type: ignore[attr-defined]


def assisted(job: DecodingJob) -> GenerationOutput:
    options = _options(AssistedOptions, job)
    model = _assistant(job, "assisted decoding")
    if is_transformers_lm(model) and job.tokenizer is not None and job.extra.get("assistant_tokenizer"):
        raise ValueError("an assistant with its own tokenizer needs search: universal_assisted")
    return speculate(job, _model_drafter(model, options, _padded(job)))


assisted.Config = AssistedOptions  # type: ignore[attr-defined]


def early_exit(job: DecodingJob) -> GenerationOutput:
    options = _options(EarlyExitOptions, job)
    model = job.model
    if not is_transformers_lm(model):
        raise ValueError("early_exit drafts with a transformers model's first layers; got a plain callable")
    total = int(getattr(model, getattr(model, "base_model_prefix", "model"), model).config.num_hidden_layers)
    if options.assistant_early_exit >= total:
        raise ValueError(
            f"search_options.assistant_early_exit must be below the model's {total} layers "
            f"(got {options.assistant_early_exit})"
        )
    drafter = ModelDrafter(
        model,
        options.num_assistant_tokens,
        options.num_assistant_tokens_schedule,
        options.assistant_confidence_threshold,
        layers=options.assistant_early_exit,
        padded=_padded(job),
    )
    return speculate(job, drafter)


early_exit.Config = EarlyExitOptions  # type: ignore[attr-defined]


def universal_assisted(job: DecodingJob) -> GenerationOutput:
    options = _options(UniversalOptions, job)
    model = _assistant(job, "universal assisted decoding")
    assistant_tokenizer = job.extra.get("assistant_tokenizer")
    if job.tokenizer is None or assistant_tokenizer is None:
        raise ValueError(
            "universal assisted decoding needs both tokenizers: pass tokenizer= and assistant_tokenizer="
        )
    drafter = UniversalDrafter(
        model,
        job.tokenizer,
        assistant_tokenizer,
        num_tokens=_assistant_setting(model, "num_assistant_tokens", options.num_assistant_tokens, 20),
        confidence=_assistant_setting(
            model, "assistant_confidence_threshold", options.assistant_confidence_threshold, 0.4
        ),
        assistant_lookbehind=options.assistant_lookbehind,
        target_lookbehind=options.target_lookbehind,
    )
    return speculate(job, drafter)


universal_assisted.Config = UniversalOptions  # type: ignore[attr-defined]


def register_search_strategies(register: Callable[..., None]) -> None:
    register("prompt_lookup", prompt_lookup, "speculative decoding with drafts looked up in the prompt (n-grams)")
    register("assisted", assisted, "speculative decoding with a smaller assistant model (assistant_model=)")
    register("early_exit", early_exit, "speculative decoding drafted by the model's own first layers")
    register(
        "universal_assisted",
        universal_assisted,
        "speculative decoding with an assistant that has its own tokenizer (assistant_tokenizer=)",
    )
