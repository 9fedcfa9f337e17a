"""Constrained beam search (``force_words_ids``, ``constraints``): transformers 4.x's ``_constrained_beam_search``.

transformers 5 moved it to a Hub repository; this follows 4.55.4 and is
tested against that release's outputs (tests/fixtures/hf455). Beam search
runs as usual (processors see log-softmax scores), but after each step
every beam is also offered the tokens that advance its constraints, and the
next beams are taken round-robin from "banks" of equal progress, most
progress first, so beams that fulfil more of the constraints survive. A
beam ends on eos only if it has fulfilled every constraint; at the end the
best complete beams are returned, or incomplete ones if too few finished.

Constraints come from ``force_words_ids`` (a list of token lists is one
phrase each; a list of lists of token lists is one disjunction each) and
from ``constraints``, written in config files as ``{phrasal: [ids]}`` or
``{disjunctive: [[ids], [ids]]}``. As in 4.x a forced word already in the
prompt counts as done. Unlike 4.x a finished beam keeps the eos token it
ended with (4.x writes the first eos id; the same with one eos id).
``output_scores`` gives each step's processed scores plus the beams'
running scores, as 4.x returns them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from pydantic import ConfigDict, Field, field_validator, model_validator

from logitkit.decoding import DecodingJob, GenerationOutput
from logitkit.strict import StrictModel
from logitkit_builtins._beam_constraints import (
    Constraint,
    ConstraintProgress,
    Disjunction,
    Phrase,
)
from logitkit_builtins._beam_step import end_step, finished_output, with_records
from logitkit_builtins._options import search_options
from logitkit_builtins.group_beam import Hypotheses

NEG = -1.0e9
TokenIds = list[int]


class ConstraintEntry(StrictModel):
    """One constraint in a config file: exactly one of ``phrasal`` or ``disjunctive``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Tokens that must appear in this order.
    phrasal: TokenIds | None = Field(default=None, min_length=1)
    #: Token sequences of which one must appear.
    disjunctive: list[TokenIds] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one_kind(self) -> ConstraintEntry:
        if (self.phrasal is None) == (self.disjunctive is None):
            raise ValueError("give exactly one of phrasal or disjunctive")
        for word in self.disjunctive or []:
            if not word:
                raise ValueError("a disjunctive word must not be empty")
        if self.disjunctive is not None:
            Disjunction(self.disjunctive)  # no word may begin another
        for token in [*(self.phrasal or []), *(t for w in self.disjunctive or [] for t in w)]:
            if token < 0:
                raise ValueError(f"token ids must be >= 0, got {token}")
        return self

    def build(self) -> Constraint:
        return Phrase(list(self.phrasal)) if self.phrasal is not None else Disjunction(
            [list(w) for w in self.disjunctive or []]
        )


class ConstrainedOptions(StrictModel):
    """``generation.search_options`` for ``search: constrained_beam_search``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Each entry one phrase ([ids]) or one disjunction ([[ids], [ids]]), as transformers' force_words_ids.
    force_words_ids: list[TokenIds | list[TokenIds]] = Field(default_factory=list)
    #: Phrasal and disjunctive constraints, run before force_words_ids (4.x's order).
    constraints: list[ConstraintEntry] = Field(default_factory=list)

    @field_validator("force_words_ids")
    @classmethod
    def _words(cls, words: list[Any]) -> list[Any]:
        for entry in words:
            if not entry:
                raise ValueError("a forced word must not be empty")
            flat = entry if isinstance(entry[0], int) else [t for w in entry for t in w]
            if not isinstance(entry[0], int):
                if any(not w for w in entry):
                    raise ValueError("a disjunctive word must not be empty")
                Disjunction(entry)
            if any(t < 0 for t in flat):
                raise ValueError("token ids must be >= 0")
        return words

    @model_validator(mode="after")
    def _some(self) -> ConstrainedOptions:
        if not self.force_words_ids and not self.constraints:
            raise ValueError("give force_words_ids or constraints")
        return self

    def build(self) -> list[Constraint]:
        built = [entry.build() for entry in self.constraints]
        for entry in self.force_words_ids:
            if isinstance(entry[0], int):
                built.append(Phrase(list(entry)))  # type: ignore[arg-type]
            else:
                built.append(Disjunction([list(w) for w in entry]))  # type: ignore[union-attr]
        return built


def _progress(constraints: list[Constraint], tokens: list[int] | None) -> ConstraintProgress:
    state = ConstraintProgress([c.copy() for c in constraints])
    state.reset(tokens)
    return state


def _constraint_step(
    constraints: list[Constraint],
    input_ids: torch.Tensor,
    vocab_scores: torch.Tensor,
    b: int,
    beams: int,
    sent_scores: torch.Tensor,
    sent_tokens: torch.Tensor,
    sent_indices: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """4.x ``step_sentence_constraint``: add the beams' advancing tokens, then pick beams round-robin by bank."""
    start = b * beams
    full = torch.cat((input_ids[sent_indices], sent_tokens.unsqueeze(-1)), dim=-1)
    seen = full.tolist()
    states = [_progress(constraints, seq) for seq in seen]
    new_states: list[ConstraintProgress] = []
    new_indices: list[int] = []
    new_tokens: list[torch.Tensor] = []
    new_scores: list[torch.Tensor] = []
    for seq_idx in range(beams):
        pre_seq = input_ids[start + seq_idx]
        advance_state = _progress(constraints, pre_seq.tolist())
        if advance_state.completed:
            continue
        for token in torch.tensor(advance_state.advance(), dtype=torch.long):
            new_state = advance_state.copy(stateful=True)
            new_state.add(int(token))
            advance_seq = torch.cat((pre_seq, token.unsqueeze(0).to(pre_seq.device)), -1).tolist()
            if advance_seq not in seen:
                seen.append(advance_seq)
                new_indices.append(start + seq_idx)
                new_tokens.append(token)
                new_scores.append(vocab_scores[start + seq_idx].take(token.to(vocab_scores.device)))
                new_states.append(new_state)
    if not new_indices:
        return sent_scores, sent_tokens, sent_indices
    device = sent_indices.device
    all_states = states + new_states
    all_tokens = torch.cat((sent_tokens, torch.stack(new_tokens).to(device)), -1)
    all_scores = torch.cat((sent_scores, torch.stack(new_scores).to(device)), -1)
    banks = torch.tensor([s.bank() for s in all_states], device=device)
    order = (banks * 100 + all_scores).sort(descending=True).indices
    sorted_banks = banks[order]
    # Round-robin over banks: the best of each bank first, then the second best of each, ...
    increments, counter, current = [], -1, sorted_banks[0]
    for bank in sorted_banks:
        if bank == current:
            counter += 1
        else:
            counter, current = 0, bank
        increments.append(counter)
    order = order[torch.tensor(np.argsort(increments, kind="mergesort"))][:beams]
    indices = torch.cat((sent_indices, torch.tensor(new_indices, device=device)))
    return all_scores[order], all_tokens[order], indices[order]


def constrained_beam_search(job: DecodingJob) -> GenerationOutput:
    options = search_options(ConstrainedOptions, job)
    settings = job.settings
    beams = settings.num_beams
    if beams < 2 or settings.num_beam_groups != 1:
        raise ValueError("constrained_beam_search needs num_beams > 1 and num_beam_groups 1")
    constraints = options.build()
    pipe = job.pipeline
    state = job.start(expand=beams)
    batch, prompt_length = job.batch_size, job.prompt_length
    device = state.sequence_buffer.device
    eos = set(job.eos)
    # eos is handled by the hypotheses; the other criteria end the whole search.
    other_criteria = [c for c in job.criteria if c.reason != "eos"]
    hyps = [
        Hypotheses(beams, settings.length_penalty, settings.early_stopping, job.max_length)
        for _ in range(batch)
    ]
    done = [False] * batch
    beam_scores = torch.zeros((batch, beams), device=device)
    beam_scores[:, 1:] = NEG
    beam_scores = beam_scores.view(-1)
    input_ids = state.sequences.clone()
    logits = state.logits
    n_keep = max(2, 1 + len(eos)) * beams
    ended_by = "length"
    scores_seen: list[torch.Tensor] = []
    logits_seen: list[torch.Tensor] = []
    while True:
        ctx = job.context(state, input_ids, beam_search=True)
        processed = pipe.process(torch.nn.functional.log_softmax(logits, dim=-1), ctx)
        totals = processed + beam_scores[:, None]
        if settings.output_scores:
            scores_seen.append(totals)
        if settings.output_logits:
            logits_seen.append(logits)
        vocab = totals.shape[-1]
        top_scores, top_ids = torch.topk(totals.view(batch, beams * vocab), n_keep, dim=1)
        top_beams, top_tokens = top_ids // vocab, top_ids % vocab
        beam_scores, tokens, source = _process(
            constraints, hyps, done, input_ids, top_scores, top_tokens, top_beams, totals,
            eos, job.pad, beams, prompt_length,
        )  # fmt: skip
        input_ids = torch.cat([input_ids[source], tokens.unsqueeze(-1)], dim=-1)
        ended = end_step(job, state, input_ids, source, tokens, done, other_criteria)
        if ended is not None:
            ended_by = ended
            break
        logits = job.runner.advance(input_ids, state.attention_mask)
    output = _finalize(constraints, hyps, done, input_ids, beam_scores, job, ended_by)
    return with_records(output, job, scores_seen, logits_seen)


def _process(
    constraints: list[Constraint],
    hyps: list[Hypotheses],
    done: list[bool],
    input_ids: torch.Tensor,
    top_scores: torch.Tensor,
    top_tokens: torch.Tensor,
    top_beams: torch.Tensor,
    vocab_scores: torch.Tensor,
    eos: set[int],
    pad: int,
    beams: int,
    prompt_length: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """4.x ``ConstrainedBeamSearchScorer.process``: finish complete eos candidates, keep ``beams`` live ones."""
    batch = top_scores.shape[0]
    cur_len = input_ids.shape[-1] + 1
    device = input_ids.device
    next_scores = torch.zeros((batch, beams), dtype=top_scores.dtype, device=device)
    next_tokens = torch.zeros((batch, beams), dtype=torch.long, device=device)
    next_indices = torch.zeros((batch, beams), dtype=torch.long, device=device)
    scores_l, tokens_l, beams_l = top_scores.tolist(), top_tokens.tolist(), top_beams.tolist()
    for b in range(batch):
        if done[b]:
            next_tokens[b, :] = pad
            continue
        kept = 0
        for rank, (token, score, beam) in enumerate(zip(tokens_l[b], scores_l[b], beams_l[b], strict=True)):
            row = b * beams + beam
            if token in eos:
                if rank >= beams:
                    continue
                if _progress(constraints, input_ids[row].tolist()).completed:
                    finished = torch.cat([input_ids[row], input_ids.new_tensor([token])])
                    hyps[b].add(finished, score, cur_len - prompt_length, "eos")
            else:
                next_scores[b, kept] = top_scores[b, rank]
                next_tokens[b, kept] = token
                next_indices[b, kept] = row
                kept += 1
            if kept == beams:
                break
        next_scores[b], next_tokens[b], next_indices[b] = _constraint_step(
            constraints, input_ids, vocab_scores, b, beams, next_scores[b], next_tokens[b], next_indices[b]
        )
        done[b] = done[b] or hyps[b].is_done(max(scores_l[b]), cur_len, prompt_length)
    return next_scores.view(-1), next_tokens.view(-1), next_indices.view(-1)


def _finalize(
    constraints: list[Constraint],
    hyps: list[Hypotheses],
    done: list[bool],
    input_ids: torch.Tensor,
    beam_scores: torch.Tensor,
    job: DecodingJob,
    ended_by: str,
) -> GenerationOutput:
    """4.x ``finalize``: complete beams join the hypotheses; incomplete ones too if too few are complete."""
    beams, keep, prompt_length = job.settings.num_beams, job.settings.num_return_sequences, job.prompt_length
    generated = input_ids.shape[-1] - prompt_length
    for b, hyp in enumerate(hyps):
        if done[b]:
            continue
        complete = []
        for i in range(beams):
            row = b * beams + i
            if _progress(constraints, input_ids[row].tolist()).completed:
                hyp.add(input_ids[row], float(beam_scores[row]), generated, ended_by)
                complete.append(i)
        if len(complete) < keep:
            # 4.x adds every incomplete beam here (its loop never counts the ones it adds).
            for i in range(beams):
                if i not in complete:
                    row = b * beams + i
                    hyp.add(input_ids[row], float(beam_scores[row]), generated, ended_by)
    chosen: list[tuple[float, torch.Tensor, str]] = []
    for hyp in hyps:
        ranked = sorted(hyp.beams, key=lambda x: x[0])
        chosen.extend(ranked.pop() for _ in range(keep))
    return finished_output(job, input_ids, chosen, prompt_length)


constrained_beam_search.Config = ConstrainedOptions  # type: ignore[attr-defined]
