"""Search strategies: step-by-step decoding (greedy or sampled by the selector), beam and group beam search."""

from __future__ import annotations

from collections.abc import Callable

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
    state = job.start(expand=job.settings.num_return_sequences)
    book = job.step_book(state)
    logits = state.logits
    while True:
        ctx = job.context(state, state.sequences)
        tokens, processed = job.choose(logits, ctx, keep_scores=job.settings.output_scores)
        if book.commit(tokens, processed, logits):
            break
        logits = job.runner.advance(state.sequences, state.attention_mask)
    return book.output()


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
