"""Beam search, vectorised over batch and beams, following transformers' ``_beam_search`` step for step.

Processors see log-softmax scores (``ctx.beam_search`` is True), as in
transformers. Per prompt we keep ``num_beams`` running beams and the best
``num_beams`` finished ones; each step considers the top
``max(2, 1 + n_eos) * num_beams`` continuations so that enough beams stay
alive when some finish. ``early_stopping``: True stops a prompt as soon as
``num_beams`` beams have finished; False stops when the best running beam,
scored at the current length, cannot beat the worst finished one; "never"
uses the length that gives the running beam its best possible score.
"""

from __future__ import annotations

import torch

from logitkit.decoding import INITIAL_STEPS, DecodingJob, GenerationOutput, reasons_from_codes

NEG = -1.0e9


def gather_beams(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``tensor[b, index[b, k], ...]`` for [batch, beams, ...] tensors."""
    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)


def widen(tensor: torch.Tensor, width: int, fill: int) -> torch.Tensor:
    """``tensor`` with its last dimension padded with ``fill`` to ``width``."""
    grown = tensor.new_full((*tensor.shape[:-1], width), fill)
    grown[..., : tensor.shape[-1]] = tensor
    return grown


def top_continuations(totals: torch.Tensor, k: int, sample: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``(scores, flat indices)`` of ``k`` continuations per prompt, best first.

    Beam sampling draws them without replacement from softmax(totals), as
    transformers' ``_get_top_k_continuations`` does, so the same torch seed
    draws the same beams; beam search takes the top ``k``.
    """
    if not sample:
        return torch.topk(totals, k=k)
    indices = torch.multinomial(torch.nn.functional.softmax(totals, dim=-1), num_samples=k)
    scores, order = torch.gather(totals, 1, indices).sort(dim=-1, descending=True)
    return scores, indices.gather(-1, order)


def beam_sample(job: DecodingJob) -> GenerationOutput:
    """Beam search whose continuations are sampled (transformers' do_sample with num_beams > 1)."""
    return beam_search(job, sample=True)


def beam_search(job: DecodingJob, sample: bool = False) -> GenerationOutput:
    settings = job.settings
    num_beams = settings.num_beams
    length_penalty = settings.length_penalty
    early_stopping = settings.early_stopping
    pipe = job.pipeline
    state = job.start(expand=num_beams)
    batch = job.batch_size
    prompt_length = job.prompt_length
    max_length = job.max_length
    device = state.sequence_buffer.device

    beams_to_keep = max(2, 1 + len(job.eos)) * num_beams
    top_num_beam_mask = torch.zeros(beams_to_keep, dtype=torch.bool, device=device)
    top_num_beam_mask[:num_beams] = True

    fill = (job.pad or job.eos[0]) if job.eos else -1
    # The [batch, beams, length] buffers start with room for a few steps and double as the beams
    # grow (see ``widen`` in the loop), so a huge max_length with an early finish allocates little.
    width = min(max_length, prompt_length + INITIAL_STEPS)
    running_sequences = torch.full((batch, num_beams, width), fill, dtype=torch.long, device=device)
    running_sequences[:, :, :prompt_length] = state.sequences.view(batch, num_beams, prompt_length)
    sequences = running_sequences.clone()
    # Only the first beam starts live, so the first step does not pick the same token num_beams times.
    running_scores = torch.zeros((batch, num_beams), device=device)
    running_scores[:, 1:] = NEG
    beam_scores = torch.full((batch, num_beams), NEG, device=device)
    finished = torch.zeros((batch, num_beams), dtype=torch.bool, device=device)
    finished_codes = torch.zeros((batch, num_beams), dtype=torch.int8, device=device)
    may_improve = torch.ones((batch, 1), dtype=torch.bool, device=device)
    running_beam_indices = torch.full(
        (batch, num_beams, width - prompt_length), -1, dtype=torch.int32, device=device
    )
    beam_indices = running_beam_indices.clone()
    batch_offset = torch.arange(batch, device=device).view(-1, 1) * num_beams

    scores_seen: list[torch.Tensor] = []
    logits_seen: list[torch.Tensor] = []
    cur_len = prompt_length
    logits = state.logits
    while True:
        if cur_len >= width:
            width = min(max_length, max(cur_len + 1, 2 * width))
            running_sequences = widen(running_sequences, width, fill)
            sequences = widen(sequences, width, fill)
            running_beam_indices = widen(running_beam_indices, width - prompt_length, -1)
            beam_indices = widen(beam_indices, width - prompt_length, -1)
        flat_running = running_sequences[:, :, :cur_len].reshape(batch * num_beams, cur_len)
        ctx = job.context(state, flat_running, beam_search=True)
        log_probs = pipe.process(torch.nn.functional.log_softmax(logits, dim=-1), ctx)
        if settings.output_logits:
            logits_seen.append(logits)
        if settings.output_scores:
            scores_seen.append(log_probs)
        vocab = log_probs.shape[-1]
        totals = (log_probs.view(batch, num_beams, vocab) + running_scores[:, :, None]).view(
            batch, -1
        )

        # Top continuations over all beams of a prompt.
        topk_log_probs, topk_indices = top_continuations(totals, beams_to_keep, sample)
        source_beam = topk_indices // vocab
        topk_beam_indices = gather_beams(running_beam_indices, source_beam)
        topk_sequences = gather_beams(running_sequences, source_beam)
        topk_sequences[:, :, cur_len] = topk_indices % vocab
        topk_beam_indices[:, :, cur_len - prompt_length] = (source_beam + batch_offset).to(
            torch.int32
        )

        # Which candidates finish now, and why.
        candidates = topk_sequences[:, :, : cur_len + 1].reshape(batch * beams_to_keep, cur_len + 1)
        # Candidates inherit their source beam's completeness (row state before this step's tokens).
        complete = state.rows.complete_rows()
        if complete is not None:
            complete = complete.to(device)[(source_beam + batch_offset).reshape(-1)]
        codes = job.stop_codes(candidates, complete=complete)
        if codes is None:
            codes = torch.zeros(batch * beams_to_keep, dtype=torch.int8, device=device)
        codes = codes.view(batch, beams_to_keep)
        hits = codes != 0

        # The best unfinished candidates keep running.
        running_log_probs = topk_log_probs + hits.to(torch.float32) * NEG
        keep = torch.topk(running_log_probs, k=num_beams)[1]
        running_sequences = gather_beams(topk_sequences, keep)
        running_scores = gather_beams(running_log_probs, keep)
        running_beam_indices = gather_beams(topk_beam_indices, keep)

        # Finished candidates among the top num_beams join the finished set if they score well enough.
        just_finished = hits & top_num_beam_mask[None, :]
        candidate_scores = topk_log_probs / ((cur_len + 1 - prompt_length) ** length_penalty)
        full = torch.all(finished, dim=-1, keepdim=True) & (early_stopping is True)
        candidate_scores = candidate_scores + full.to(torch.float32) * NEG
        candidate_scores = candidate_scores + (~may_improve).to(torch.float32) * NEG
        candidate_scores = candidate_scores + (~just_finished) * NEG
        merged_scores = torch.cat((beam_scores, candidate_scores), dim=1)
        best = torch.topk(merged_scores, k=num_beams)[1]
        sequences = gather_beams(torch.cat((sequences, topk_sequences), dim=1), best)
        beam_scores = gather_beams(merged_scores, best)
        beam_indices = gather_beams(torch.cat((beam_indices, topk_beam_indices), dim=1), best)
        finished = gather_beams(torch.cat((finished, just_finished), dim=1), best)
        finished_codes = gather_beams(torch.cat((finished_codes, codes), dim=1), best)

        source_rows = running_beam_indices[..., cur_len - prompt_length].reshape(-1).to(torch.long)
        job.runner.reorder(source_rows)
        # Row state follows the beams: each running beam takes its source beam's state, then its token.
        state.rows.reorder(source_rows)
        state.rows.accept(running_sequences[:, :, cur_len].reshape(-1))
        cur_len += 1

        # Can a running beam still beat the worst finished one?
        if early_stopping == "never" and length_penalty > 0.0:
            best_length = max_length - prompt_length
        else:
            best_length = cur_len - prompt_length
        best_running = running_scores[:, :1] / (best_length**length_penalty)
        worst_finished = torch.where(finished, torch.min(beam_scores, dim=1, keepdim=True)[0], NEG)
        may_improve = may_improve & torch.any(best_running > worst_finished, dim=-1, keepdim=True)

        # transformers' _beam_search_has_unfinished_sequences, read back in one host sync.
        go_on = torch.any(may_improve) & ~torch.all(hits)
        if early_stopping is True:
            go_on = go_on & ~torch.all(finished)
        if not bool(go_on):
            break
        state.length = cur_len
        logits = job.runner.advance(
            running_sequences[:, :, :cur_len].reshape(batch * num_beams, cur_len),
            state.attention_mask,
        )

    keep_n = settings.num_return_sequences
    out_sequences = sequences[:, :keep_n].reshape(batch * keep_n, -1)
    out_scores = beam_scores[:, :keep_n].reshape(-1)
    out_indices = beam_indices[:, :keep_n].reshape(batch * keep_n, -1)
    out_codes = finished_codes[:, :keep_n].reshape(-1)
    generated = int(((out_indices + 1).bool()).sum(dim=1).max())
    return GenerationOutput(
        sequences=out_sequences[:, : prompt_length + generated].clone(),
        finish_reasons=reasons_from_codes(out_codes),
        prompt_length=prompt_length,
        scores=tuple(scores_seen) if settings.output_scores else None,
        logits=tuple(logits_seen) if settings.output_logits else None,
        sequences_scores=out_scores,
    )
