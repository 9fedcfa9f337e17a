"""The end of one step of 4.x's hypothesis-list beam searches (constrained and group beam search).

Both keep the beams they chose (``order``: the source row of each kept beam),
move the model's cache and the pipeline's row state to them, let the row
state accept the new tokens, and then stop when every prompt's hypotheses
are complete or a criterion other than eos and length has finished every row.
"""

from __future__ import annotations

import torch

from logitkit.decoding import DecodingJob, DecodingState, GenerationOutput
from logitkit.stopping import FINISH_REASONS, StoppingCriterion


def end_step(
    job: DecodingJob,
    state: DecodingState,
    input_ids: torch.Tensor,
    order: torch.Tensor,
    tokens: torch.Tensor,
    done: list[bool],
    criteria: list[StoppingCriterion],
) -> str | None:
    """Why the search ends after this step (``length`` when every hypothesis list is done, else the
    criterion's reason), or None to run another step (``state.length`` then counts the new column)."""
    job.runner.reorder(order)
    state.rows.reorder(order)
    state.rows.accept(tokens)
    fired = job.stop_codes(input_ids, criteria)
    if all(done):
        return "length"
    if fired is not None and bool((fired != 0).all()):
        return FINISH_REASONS[int(fired.max())]
    state.length = input_ids.shape[-1]
    return None


def finished_output(
    job: DecodingJob, input_ids: torch.Tensor, chosen: list[tuple[float, torch.Tensor, str]], prompt_length: int
) -> GenerationOutput:
    """The search's result from its chosen ``(score, sequence, finish reason)`` per returned row.

    Shorter rows are filled with pad, as 4.x's ``BeamSearchScorer.finalize`` fills them.
    """
    lengths = [len(seq) for _, seq, _ in chosen]
    out = input_ids.new_full((len(chosen), min(max(lengths), job.max_length)), job.pad)
    for i, (_, seq, _) in enumerate(chosen):
        out[i, : len(seq)] = seq
    return GenerationOutput(
        sequences=out,
        finish_reasons=[reason for _, _, reason in chosen],
        prompt_length=prompt_length,
        sequences_scores=torch.tensor([score for score, _, _ in chosen]),
    )


def with_records(
    output: GenerationOutput, job: DecodingJob, scores: list[torch.Tensor], logits: list[torch.Tensor]
) -> GenerationOutput:
    """The output with the steps' scores and logits, where the settings asked for them."""
    output.scores = tuple(scores) if job.settings.output_scores else None
    output.logits = tuple(logits) if job.settings.output_logits else None
    return output
