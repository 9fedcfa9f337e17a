"""Search strategies: step-by-step decoding (greedy or sampled by the selector), beam and group beam search."""

from __future__ import annotations

from collections.abc import Callable

import torch

from logitkit.decoding import DecodingJob, GenerationOutput
from logitkit_builtins.beam import beam_sample, beam_search
from logitkit_builtins.constrained_beam import constrained_beam_search
from logitkit_builtins.contrastive import contrastive_search
from logitkit_builtins.dola import dola
from logitkit_builtins.group_beam import group_beam_search


def decode(job: DecodingJob) -> GenerationOutput:
    """One token per row per step: the pipeline's processors, then its selector (greedy, sample, ...).

    Finished rows keep receiving the pad token until every row is done, so the
    batch keeps its shape and every row's state advances each step.
    """
    record_scores, record_logits = job.settings.output_scores, job.settings.output_logits
    state = job.start(expand=job.settings.num_return_sequences)
    rows = state.sequence_buffer.shape[0]
    codes = torch.zeros(rows, dtype=torch.int8, device=state.sequence_buffer.device)
    pad = torch.tensor(job.pad, dtype=torch.long, device=codes.device)
    scores_seen: list[torch.Tensor] = []
    logits_seen: list[torch.Tensor] = []
    logits = state.logits
    any_finished = False
    while True:
        ctx = job.context(state, state.sequences)
        tokens, processed = job.choose(logits, ctx, keep_scores=record_scores)
        if any_finished:
            tokens = torch.where(codes == 0, tokens, pad)
        # Asked before accept, as beam search must: may each row end here?
        complete = state.rows.complete_rows()
        state.rows.accept(tokens)
        if job.on_tokens is not None:
            job.on_tokens(tokens)
        if record_scores and processed is not None:
            scores_seen.append(processed)
        if record_logits:
            logits_seen.append(logits)
        state.append(tokens)
        fired = job.stop_codes(state.sequences, complete=complete)
        if fired is not None:
            codes = torch.where(codes == 0, fired, codes)
            any_finished = True
            # The loop's one host sync, made only on steps where a criterion returned rows.
            if not bool((codes == 0).any()):
                break
        logits = job.runner.advance(state.sequences, state.attention_mask)
    return job.output(state.sequences, codes, scores_seen, logits_seen)


def register_search_strategies(register: Callable[..., None]) -> None:
    register(
        "decode",
        decode,
        "greedy or sampled decoding: the pipeline's selector picks one token per row per step",
    )
    register(
        "beam_search",
        beam_search,
        "beam search (num_beams, length_penalty, early_stopping), as transformers",
    )
    register(
        "beam_sample",
        beam_sample,
        "beam search over sampled continuations (do_sample with num_beams > 1), as transformers",
    )
    register(
        "group_beam_search",
        group_beam_search,
        "diverse beam search (num_beam_groups, diversity_penalty), transformers 4.x's algorithm",
    )
    register(
        "contrastive_search",
        contrastive_search,
        "contrastive search (penalty_alpha, top_k, low_memory), transformers 4.x's algorithm",
    )
    register(
        "dola",
        dola,
        "DoLa decoding (dola_layers: low, high or a list), greedy or sampled, transformers 4.x's algorithm",
    )
    register(
        "constrained_beam_search",
        constrained_beam_search,
        "beam search forced to include words (force_words_ids, phrasal and disjunctive constraints), transformers 4.x's algorithm",
    )
