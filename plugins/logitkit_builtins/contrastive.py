"""Contrastive search (``penalty_alpha``, ``top_k``, ``low_memory``): transformers 4.x's ``_contrastive_search``.

transformers 5 moved it to a Hub repository; this is the 4.55.4 algorithm,
tested against that release's outputs (tests/fixtures/hf455). Each step the
pipeline's processors run on the logits, the ``top_k`` most probable tokens
become candidates, and every candidate is run through the model. A
candidate's score is ``(1 - alpha) * p - alpha * s``, where ``s`` is the
highest cosine similarity between its last hidden state and those of the
row's earlier tokens (padding excluded); the best candidate is kept, and
its forward pass already gave the next step's logits.

``low_memory`` runs the candidates one at a time (``top_k`` passes of the
batch instead of one pass of ``batch * top_k`` rows) and then the chosen
token once more to build the cache. 4.55.4 fails in that mode above batch
1 (FINDINGS); here it works at any batch size.
"""

from __future__ import annotations

import torch
from pydantic import ConfigDict, Field

from logitkit.decoding import DecodingJob, GenerationOutput
from logitkit.strict import StrictModel
from logitkit_builtins._hidden_states import HiddenStatesRecorder, record_hidden_states
from logitkit_builtins._options import search_options


class ContrastiveOptions(StrictModel):
    """``generation.search_options`` for ``search: contrastive_search``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Weight of the degeneration penalty (0: greedy over the top_k).
    penalty_alpha: float = Field(ge=0.0, le=1.0)
    #: Candidates per step (transformers' default top_k is 50).
    top_k: int = Field(default=50, ge=1)
    #: Run the candidates one at a time instead of as one batch.
    low_memory: bool = False


def degeneration_ranking(
    context_hidden: torch.Tensor,
    next_hidden: torch.Tensor,
    top_k_probs: torch.Tensor,
    context_mask: torch.Tensor,
    alpha: float,
) -> torch.Tensor:
    """Each row's chosen candidate ([batch]): transformers' ``_ranking_fast``.

    ``context_hidden`` [batch*k, length, hidden], ``next_hidden`` [batch*k, 1, hidden],
    ``top_k_probs`` [batch, k], ``context_mask`` [batch*k, length] (0: padding).
    """
    norm_context = context_hidden / context_hidden.norm(dim=2, keepdim=True)
    norm_next = next_hidden / next_hidden.norm(dim=2, keepdim=True)
    cosine = torch.matmul(norm_context, norm_next.transpose(1, 2)).squeeze(-1)
    mask = context_mask.to(dtype=cosine.dtype)
    cosine = cosine + (1 - mask) * torch.finfo(cosine.dtype).min
    penalty, _ = torch.max(cosine, dim=-1)
    score = (1.0 - alpha) * top_k_probs.reshape(-1) - alpha * penalty
    return score.view(top_k_probs.shape).max(dim=-1).indices


def _candidates_batched(
    job: DecodingJob,
    recorder: HiddenStatesRecorder,
    sequences: torch.Tensor,
    mask: torch.Tensor,
    top_k_ids: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """All candidates in one pass of batch*k rows: ``(logits [batch, k, vocab], last hidden [batch, k, hidden])``."""
    batch, k = top_k_ids.shape
    job.runner.reorder(torch.arange(batch, device=sequences.device).repeat_interleave(k))
    expanded = torch.cat(
        [sequences.repeat_interleave(k, dim=0), top_k_ids.reshape(-1, 1)], dim=-1
    )
    logits = job.runner.advance(expanded, mask.repeat_interleave(k, dim=0))
    hidden = recorder.decoder_hidden_states()[-1][:, -1]
    return logits.view(batch, k, -1), hidden.view(batch, k, -1)


def _candidates_one_by_one(
    job: DecodingJob,
    recorder: HiddenStatesRecorder,
    sequences: torch.Tensor,
    mask: torch.Tensor,
    top_k_ids: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``low_memory``: one pass of the batch per candidate, the cache cropped back after each."""
    logits, hidden = [], []
    for i in range(top_k_ids.shape[1]):
        step = torch.cat([sequences, top_k_ids[:, i : i + 1]], dim=-1)
        logits.append(job.runner.advance(step, mask))
        hidden.append(recorder.decoder_hidden_states()[-1][:, -1])
        cache = getattr(job.runner, "cache", None)
        if cache is not None:
            cache.crop(-1)
    return torch.stack(logits, dim=1), torch.stack(hidden, dim=1)


def contrastive_search(job: DecodingJob) -> GenerationOutput:
    options = search_options(ContrastiveOptions, job)
    recorder = record_hidden_states(job.runner, "contrastive_search")
    k, alpha = options.top_k, options.penalty_alpha
    state = job.start(expand=1)
    batch = job.batch_size
    device = state.sequence_buffer.device
    # The prompt's last hidden states are the first context; padding never counts as similar.
    context_hidden = recorder.decoder_hidden_states()[-1]
    context_mask = job.attention_mask.to(device)
    if not options.low_memory and job.encoder_input_ids is not None:
        assert job.encoder_attention_mask is not None
        # Candidates run as batch*k rows, so the encoder side is repeated k times (as 4.x expands it once).
        job.runner.encode(job.encoder_input_ids, job.encoder_attention_mask, k)  # type: ignore[union-attr]
    rows = torch.arange(batch, device=device)
    book = job.step_book(state)
    logits = state.logits
    while True:
        sequences = state.sequences
        ctx = job.context(state, sequences)
        processed = job.pipeline.process(logits, ctx)
        step_logits = logits
        top_k_probs, top_k_ids = torch.topk(torch.softmax(processed, dim=-1), k=k, dim=-1)
        length = int(sequences.shape[-1])
        state.reserve(length + 1)
        mask = state.attention_mask_buffer[:, : length + 1]
        gather = _candidates_one_by_one if options.low_memory else _candidates_batched
        candidate_logits, candidate_hidden = gather(job, recorder, sequences, mask, top_k_ids)
        chosen = degeneration_ranking(
            context_hidden.repeat_interleave(k, dim=0),
            candidate_hidden.reshape(batch * k, 1, -1),
            top_k_probs,
            context_mask.repeat_interleave(k, dim=0),
            alpha,
        )
        tokens = top_k_ids[rows, chosen]
        if options.low_memory:
            # The cache holds no candidate: run the chosen token to extend it (its logits are the candidate's).
            job.runner.advance(torch.cat([sequences, tokens[:, None]], dim=-1), mask)
        else:
            job.runner.reorder(rows * k + chosen)
        logits = candidate_logits[rows, chosen]
        context_hidden = torch.cat([context_hidden, candidate_hidden[rows, chosen][:, None]], dim=1)
        context_mask = torch.cat([context_mask, context_mask.new_ones((batch, 1))], dim=-1)
        if book.commit(tokens, processed, step_logits):
            break
    return book.output()


contrastive_search.Config = ContrastiveOptions  # type: ignore[attr-defined]
