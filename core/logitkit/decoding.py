"""What a search strategy receives (``DecodingJob``) and returns (``GenerationOutput``).

``logitkit.generate`` resolves settings, special tokens, the model adapter and
the stopping criteria into a job; a search strategy registered through
``register_search_strategies`` (a callable ``strategy(job) -> GenerationOutput``)
runs the loop. The job's helpers keep every strategy's bookkeeping the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from logitkit.healing import HealedPrompts
from logitkit.models import Runner
from logitkit.pipeline import Pipeline
from logitkit.processor import StepContext
from logitkit.sampling import splitmix64
from logitkit.settings import GenerationSettings
from logitkit.state import BatchState
from logitkit.stopping import FINISH_REASONS, StoppingCriterion, checked_stop, reason_code

if TYPE_CHECKING:
    from logitkit.step_book import StepBook

_EOS, _CONSTRAINT = reason_code("eos"), reason_code("constraint")

#: Columns past the prompt that DecodingJob.start allocates; DecodingState.reserve grows them after.
INITIAL_STEPS = 64


@dataclass
class GenerationOutput:
    """The result of ``logitkit.generate``.

    ``sequences`` holds prompt and generated tokens (for an encoder-decoder:
    the decoder sequence, starting with the decoder start token); rows are
    prompt-major, ``num_return_sequences`` consecutive rows per prompt.
    ``finish_reasons[i]`` is one of ``eos``, ``constraint`` (eos where a
    processor reported the row complete), ``stop_string``, ``length``,
    ``time``. ``scores`` (processed) and ``logits`` (raw) have one
    ``[rows, vocab]`` tensor per step when asked for; in beam search they are
    per running beam, as in transformers.
    """

    sequences: torch.Tensor
    finish_reasons: list[str]
    prompt_length: int
    scores: tuple[torch.Tensor, ...] | None = None
    logits: tuple[torch.Tensor, ...] | None = None
    #: Beam search: each returned sequence's length-penalised log-probability.
    sequences_scores: torch.Tensor | None = None
    #: With text prompts: each row's generated text (``logitkit.prompts``).
    texts: list[str] | None = None
    #: ``output_attentions`` / ``output_hidden_states``: per forward pass, one tensor per layer, under
    #: transformers' names (decoder-only: ``attentions``, ``hidden_states``; encoder-decoder: the rest).
    attentions: tuple[Any, ...] | None = None
    hidden_states: tuple[Any, ...] | None = None
    encoder_attentions: tuple[Any, ...] | None = None
    encoder_hidden_states: tuple[Any, ...] | None = None
    decoder_attentions: tuple[Any, ...] | None = None
    cross_attentions: tuple[Any, ...] | None = None
    decoder_hidden_states: tuple[Any, ...] | None = None

    @property
    def new_tokens(self) -> torch.Tensor:
        """The generated part of ``sequences``."""
        return self.sequences[:, self.prompt_length :]


def reasons_from_codes(codes: torch.Tensor, unfinished: str = "length") -> list[str]:
    """Finish-reason names from the int codes the loops keep (0, still running, becomes ``unfinished``)."""
    return [FINISH_REASONS[c] if c else unfinished for c in codes.tolist()]


@dataclass
class DecodingJob:
    """Everything a search strategy needs, resolved once by ``logitkit.generate``."""

    runner: Runner
    pipeline: Pipeline
    settings: GenerationSettings
    #: The (decoder) prompts, left-padded, one row per prompt (not yet expanded).
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    eos: tuple[int, ...]
    pad: int
    #: No (decoder) sequence grows past this total length.
    max_length: int
    criteria: list[StoppingCriterion]
    encoder_input_ids: torch.Tensor | None = None
    encoder_attention_mask: torch.Tensor | None = None
    #: Per-prompt sample seeds, or None to let the selector draw them.
    seeds: torch.Tensor | None = None
    tokenizer: Any = None
    model: Any = None
    healed: HealedPrompts | None = None
    #: Called with each step's chosen tokens ([rows]) by strategies that pick one per row per step.
    on_tokens: Callable[[torch.Tensor], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt_length(self) -> int:
        return int(self.input_ids.shape[-1])

    @property
    def batch_size(self) -> int:
        return int(self.input_ids.shape[0])

    # -- setup -----------------------------------------------------------------------

    def start(self, expand: int) -> DecodingState:
        """Repeat each prompt ``expand`` times, run the prefill, and return the loop's state."""
        ids = self.input_ids.repeat_interleave(expand, dim=0)
        mask = self.attention_mask.repeat_interleave(expand, dim=0)
        rows, length = ids.shape
        # Room for the first steps only: the buffers grow as the sequences do (DecodingState.reserve),
        # so max_new_tokens: 1000000 with an early eos never allocates a million columns.
        capacity = min(self.max_length, length + INITIAL_STEPS)
        sequences = ids.new_full((rows, capacity), self.pad)
        sequences[:, :length] = ids
        full_mask = mask.new_ones((rows, capacity))
        full_mask[:, :length] = mask
        if self.encoder_input_ids is not None and hasattr(self.runner, "encode"):
            assert self.encoder_attention_mask is not None
            self.runner.encode(self.encoder_input_ids, self.encoder_attention_mask, expand)
        logits = self.runner.start(ids, mask)
        if self.healed is not None and self.healed.extensions:
            allowed = self.healed.first_step_mask(rows, logits.shape[-1], expand, logits.device)
            logits = logits.masked_fill(~allowed, float("-inf"))
        encoder_ids = None
        if self.encoder_input_ids is not None:
            encoder_ids = self.encoder_input_ids.repeat_interleave(expand, dim=0)
        rows_state = self.pipeline.start(ids, seeds=self.row_seeds(expand))
        return DecodingState(
            sequences, full_mask, length, logits, rows_state, encoder_ids, self.pad, self.max_length
        )

    def row_seeds(self, expand: int) -> torch.Tensor | None:
        """Seeds per expanded row: the prompt's seed for its first copy, a derived one for the others."""
        if self.seeds is None:
            return None
        seeds = self.seeds.to(torch.int64).repeat_interleave(expand)
        copy = torch.arange(expand, dtype=torch.int64).repeat(self.batch_size)
        derived = splitmix64(seeds ^ splitmix64(copy))
        return torch.where(copy == 0, seeds, derived)

    # -- per step -------------------------------------------------------------------

    def context(
        self,
        state: DecodingState,
        sequences: torch.Tensor,
        *,
        beam_search: bool = False,
        rows: torch.Tensor | None = None,
    ) -> StepContext:
        """The step context for ``sequences``; ``rows`` names their rows of the state when they are a subset."""
        length = int(sequences.shape[-1])
        state.reserve(length)
        mask = state.attention_mask_buffer[:, :length]
        encoder_ids = state.encoder_input_ids
        batch = state.rows
        if rows is not None:
            mask = mask[rows]
            encoder_ids = encoder_ids[rows] if encoder_ids is not None else None
            batch = state.rows.subset(rows)
        return batch.context(
            sequences,
            attention_mask=mask,
            encoder_input_ids=encoder_ids,
            tokenizer=self.tokenizer,
            model=self.model,
            beam_search=beam_search,
        )

    def choose(
        self, logits: torch.Tensor, ctx: StepContext, keep_scores: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Processors then selector: ``(tokens, processed scores or None)``.

        Samples straight from the fused candidate view unless the dense
        processed scores were asked for.
        """
        pipe = self.pipeline
        if not keep_scores:
            return pipe.choose(logits, ctx), None
        processed = pipe.process(logits, ctx)
        return pipe.select(processed, ctx, raw=logits), processed

    def step_book(self, state: DecodingState) -> StepBook:
        """The stop, stream and record bookkeeping of a one-token-per-row loop over ``state``."""
        from logitkit.step_book import StepBook

        return StepBook.start(self, state)

    def output(
        self,
        sequences: torch.Tensor,
        codes: torch.Tensor,
        scores: list[torch.Tensor],
        logits: list[torch.Tensor],
    ) -> GenerationOutput:
        """A one-sequence-per-row strategy's result, from its finish codes and what it recorded.

        ``codes`` give the finish reasons (0: ``length``); ``scores`` and ``logits`` are
        kept where the settings asked for them.
        """
        return GenerationOutput(
            sequences=sequences.clone(),
            finish_reasons=reasons_from_codes(codes),
            prompt_length=self.prompt_length,
            scores=tuple(scores) if self.settings.output_scores else None,
            logits=tuple(logits) if self.settings.output_logits else None,
        )

    def stop_codes(
        self,
        sequences: torch.Tensor,
        criteria: list[StoppingCriterion] | None = None,
        complete: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Per row, the finish-reason code of the first criterion that fires (0: none), or None if none fired.

        ``complete`` ([rows] bool, from ``BatchState.complete_rows`` before the step's
        tokens were accepted) turns an ``eos`` finish into ``constraint`` on those rows.
        """
        step = int(sequences.shape[-1]) - self.prompt_length
        codes: torch.Tensor | None = None
        for criterion in list(self.criteria if criteria is None else criteria):
            hit = checked_stop(criterion, sequences, step, self.criteria)
            if hit is None:
                continue
            code = torch.tensor(
                reason_code(criterion.reason), dtype=torch.int8, device=sequences.device
            )
            if codes is None:
                codes = torch.where(hit, code, torch.zeros_like(code))
            else:
                codes = torch.where((codes == 0) & hit, code, codes)
        if codes is not None and complete is not None:
            codes = torch.where((codes == _EOS) & complete.to(codes.device), _CONSTRAINT, codes)
        return codes


@dataclass
class DecodingState:
    """The loop's growing tensors: buffers viewed up to the current length, grown as generation proceeds."""

    sequence_buffer: torch.Tensor
    attention_mask_buffer: torch.Tensor
    length: int
    logits: torch.Tensor
    #: The pipeline's live per-row state (prompt lengths, steps, seeds, stateful elements).
    rows: BatchState
    encoder_input_ids: torch.Tensor | None
    #: What unwritten sequence positions hold.
    pad: int = 0
    #: The buffers never grow past this many columns (the job's max_length); None: no cap.
    max_length: int | None = None

    def reserve(self, length: int) -> None:
        """Make the buffers at least ``length`` columns wide, doubling so growth costs O(1) per step."""
        have = int(self.sequence_buffer.shape[1])
        if length <= have:
            return
        wanted = max(length, 2 * have)
        if self.max_length is not None:
            wanted = max(length, min(wanted, self.max_length))
        rows = self.sequence_buffer.shape[0]
        grown = self.sequence_buffer.new_full((rows, wanted), self.pad)
        grown[:, :have] = self.sequence_buffer
        mask = self.attention_mask_buffer.new_ones((rows, wanted))
        mask[:, :have] = self.attention_mask_buffer
        self.sequence_buffer, self.attention_mask_buffer = grown, mask

    @property
    def sequences(self) -> torch.Tensor:
        self.reserve(self.length)
        return self.sequence_buffer[:, : self.length]

    @property
    def attention_mask(self) -> torch.Tensor:
        self.reserve(self.length)
        return self.attention_mask_buffer[:, : self.length]

    def append(self, tokens: torch.Tensor) -> None:
        self.reserve(self.length + 1)
        self.sequence_buffer[:, self.length] = tokens
        self.length += 1
