"""Group (diverse) beam search: transformers 4.x's ``_group_beam_search``, which v5 moved out of its core.

The ``num_beams`` beams are split into ``num_beam_groups`` groups that are
searched one after the other at every step. Before a group picks its
tokens, each token's log-probability is lowered by ``diversity_penalty``
times the number of beams of earlier groups (same prompt) that picked it at
this step (Hamming diversity; applied before the pipeline's processors: 4.x
ran it ahead of every processor except guidance and sequence_bias). Each group keeps its own finished
hypotheses with 4.x's ``BeamHypotheses`` rules; at the end the best
``num_return_sequences`` across all groups are returned, shorter rows
filled with pad as 4.x fills them (v5's beam search fills with ``pad or
eos``). Unlike 4.x, a finished sequence keeps the eos token it ended with
(4.x wrote the first eos id in its place; the two agree with one eos id).
``output_scores`` gives each step's processed scores for every beam
(diversity penalty and processors applied, before the beam's running score
is added) and ``output_logits`` the raw logits, as 4.x returns them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from logitkit.decoding import DecodingJob, GenerationOutput
from logitkit_builtins._beam_step import end_step, finished_output, with_records

NEG = -1.0e9


@dataclass
class Hypotheses:
    """The best finished beams of one group of one prompt (transformers 4.x ``BeamHypotheses``)."""

    size: int
    length_penalty: float
    early_stopping: bool | str
    max_length: int
    beams: list[tuple[float, torch.Tensor, str]] = field(default_factory=list)
    worst_score: float = 1e9

    def add(self, hyp: torch.Tensor, sum_logprobs: float, generated_len: int, reason: str) -> None:
        score = sum_logprobs / (generated_len**self.length_penalty)
        if len(self.beams) < self.size or score > self.worst_score:
            self.beams.append((score, hyp, reason))
            if len(self.beams) > self.size:
                ranked = sorted((s, i) for i, (s, _, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst_score = ranked[1][0]
            else:
                self.worst_score = min(score, self.worst_score)

    def is_done(self, best_sum_logprobs: float, cur_len: int, prompt_length: int) -> bool:
        if len(self.beams) < self.size:
            return False
        if self.early_stopping is True:
            return True
        if self.early_stopping == "never" and self.length_penalty > 0.0:
            best = best_sum_logprobs / (self.max_length - prompt_length) ** self.length_penalty
        else:
            best = best_sum_logprobs / (cur_len - prompt_length) ** self.length_penalty
        return self.worst_score >= best


def diversity_penalty(
    scores: torch.Tensor,
    current_tokens: torch.Tensor,
    batch: int,
    num_beams: int,
    group_start: int,
    penalty: float,
) -> torch.Tensor:
    """Lower each token by ``penalty`` times how often earlier groups of the same prompt chose it this step."""
    if group_start == 0 or penalty == 0.0:
        return scores
    vocab = scores.shape[-1]
    earlier = current_tokens.view(batch, num_beams)[:, :group_start]
    counts = torch.zeros(batch, vocab, dtype=scores.dtype, device=scores.device)
    counts.scatter_add_(1, earlier, torch.ones_like(earlier, dtype=scores.dtype))
    group_size = scores.shape[0] // batch
    return (scores.view(batch, group_size, vocab) - penalty * counts[:, None, :]).view(-1, vocab)


def group_beam_search(job: DecodingJob) -> GenerationOutput:
    settings = job.settings
    num_beams, groups = settings.num_beams, settings.num_beam_groups
    group_size = num_beams // groups
    pipe = job.pipeline
    state = job.start(expand=num_beams)
    batch, prompt_length = job.batch_size, job.prompt_length
    device = state.sequence_buffer.device
    eos = set(job.eos)
    # eos is handled by the hypotheses; the other criteria end the whole search.
    other_criteria = [c for c in job.criteria if c.reason != "eos"]

    hyps = [
        Hypotheses(group_size, settings.length_penalty, settings.early_stopping, job.max_length)
        for _ in range(batch * groups)
    ]
    done = [False] * (batch * groups)
    # The first beam of each group starts live.
    beam_scores = torch.full((batch, num_beams), NEG, device=device)
    beam_scores[:, ::group_size] = 0.0
    beam_scores = beam_scores.view(-1)
    input_ids = state.sequences.clone()
    logits = state.logits
    ended_by = "length"
    n_keep = max(2, 1 + len(eos)) * group_size
    scores_seen: list[torch.Tensor] = []
    logits_seen: list[torch.Tensor] = []
    while True:
        current_tokens = torch.zeros(batch * num_beams, dtype=torch.long, device=device)
        reorder = torch.zeros(batch * num_beams, dtype=torch.long, device=device)
        log_softmax = torch.nn.functional.log_softmax(logits, dim=-1)
        if settings.output_logits:
            logits_seen.append(logits)
        step_scores = torch.zeros_like(log_softmax) if settings.output_scores else None
        for g in range(groups):
            start = g * group_size
            rows = torch.tensor(
                [b * num_beams + i for b in range(batch) for i in range(start, start + group_size)],
                device=device,
            )
            group_ids = input_ids[rows]
            scores = diversity_penalty(
                log_softmax[rows],
                current_tokens,
                batch,
                num_beams,
                start,
                settings.diversity_penalty,
            )
            ctx = job.context(state, group_ids, beam_search=True, rows=rows)
            ctx.extra["beam_group"] = g
            scores = pipe.process(scores, ctx)
            if step_scores is not None:
                step_scores[rows] = scores
            vocab = scores.shape[-1]
            totals = (scores + beam_scores[rows].unsqueeze(-1)).view(batch, group_size * vocab)
            top_scores, top_ids = torch.topk(totals, n_keep, dim=1, largest=True, sorted=True)
            top_beams, top_tokens = top_ids // vocab, top_ids % vocab
            next_scores, next_tokens, next_rows = _choose(
                hyps,
                done,
                g,
                groups,
                group_size,
                group_ids,
                top_scores,
                top_tokens,
                top_beams,
                eos,
                job,
                prompt_length,
            )
            beam_scores[rows] = next_scores
            input_ids[rows] = group_ids[next_rows]
            current_tokens[rows] = next_tokens
            reorder[rows] = num_beams * (next_rows // group_size) + start + (next_rows % group_size)
        if step_scores is not None:
            scores_seen.append(step_scores)
        input_ids = torch.cat([input_ids, current_tokens.unsqueeze(-1)], dim=-1)
        ended = end_step(job, state, input_ids, reorder, current_tokens, done, other_criteria)
        if ended is not None:
            ended_by = ended
            break
        logits = job.runner.advance(input_ids, state.attention_mask)
    output = _finalize(hyps, done, input_ids, beam_scores, job, groups, group_size, ended_by)
    return with_records(output, job, scores_seen, logits_seen)


def _choose(
    hyps: list[Hypotheses],
    done: list[bool],
    g: int,
    groups: int,
    group_size: int,
    group_ids: torch.Tensor,
    top_scores: torch.Tensor,
    top_tokens: torch.Tensor,
    top_beams: torch.Tensor,
    eos: set[int],
    job: DecodingJob,
    prompt_length: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """4.x ``BeamSearchScorer.process`` for one group: finish eos candidates, keep group_size live ones."""
    batch = top_scores.shape[0]
    cur_len = group_ids.shape[-1] + 1
    next_scores = torch.zeros(batch, group_size, dtype=top_scores.dtype)
    next_tokens = torch.full((batch, group_size), job.pad, dtype=torch.long)
    next_rows = torch.zeros(batch, group_size, dtype=torch.long)
    scores_l, tokens_l, beams_l = top_scores.tolist(), top_tokens.tolist(), top_beams.tolist()
    for b in range(batch):
        key = b * groups + g
        if done[key]:
            continue
        kept = 0
        for rank, (token, score, beam) in enumerate(
            zip(tokens_l[b], scores_l[b], beams_l[b], strict=True)
        ):
            row = b * group_size + beam
            if token in eos:
                if rank >= group_size:
                    continue
                # Keep the eos token itself (4.x dropped it and wrote eos_token_id[0] in finalize).
                finished = torch.cat([group_ids[row], group_ids.new_tensor([token])])
                hyps[key].add(finished, score, cur_len - prompt_length, "eos")
            else:
                next_scores[b, kept], next_tokens[b, kept], next_rows[b, kept] = score, token, row
                kept += 1
            if kept == group_size:
                break
        done[key] = done[key] or hyps[key].is_done(max(scores_l[b]), cur_len, prompt_length)
    device = group_ids.device
    return (
        next_scores.view(-1).to(device),
        next_tokens.view(-1).to(device),
        next_rows.view(-1).to(device),
    )


def _finalize(
    hyps: list[Hypotheses],
    done: list[bool],
    input_ids: torch.Tensor,
    beam_scores: torch.Tensor,
    job: DecodingJob,
    groups: int,
    group_size: int,
    ended_by: str,
) -> GenerationOutput:
    """4.x ``BeamSearchScorer.finalize``: add the running beams of unfinished groups, keep the best overall."""
    prompt_length = job.prompt_length
    for key, hyp in enumerate(hyps):
        if done[key]:
            continue
        for i in range(group_size):
            row = key * group_size + i
            hyp.add(
                input_ids[row],
                float(beam_scores[row]),
                input_ids.shape[-1] - prompt_length,
                ended_by,
            )
    keep = job.settings.num_return_sequences
    chosen: list[tuple[float, torch.Tensor, str]] = []
    for b in range(job.batch_size):
        candidates = [beam for hyp in hyps[b * groups : (b + 1) * groups] for beam in hyp.beams]
        ranked = sorted(candidates, key=lambda x: x[0])
        chosen.extend(ranked.pop() for _ in range(keep))
    return finished_output(job, input_ids, chosen, prompt_length)
