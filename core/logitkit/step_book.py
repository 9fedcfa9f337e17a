"""The per-row bookkeeping of a loop that emits one token per row at a time.

``decode``, contrastive search, DoLa and the speculative searches all do the
same after choosing a row's token: pad the rows already finished, let the
pipeline's row state accept the token, stream it, record the step's scores
and logits where the settings ask for them, append it, and ask the stopping
criteria which rows are done. ``StepBook`` holds that once (``job.step_book``),
and ``output`` turns it into the strategy's result with ``job.output``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from logitkit.decoding import DecodingJob, DecodingState, GenerationOutput


@dataclass
class StepBook:
    job: DecodingJob
    state: DecodingState
    #: Per row, the finish-reason code (0: still running).
    codes: torch.Tensor
    pad: torch.Tensor
    scores: list[torch.Tensor] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)
    #: Whether any row has finished, so that running-only steps skip the padding.
    any_finished: bool = False

    @classmethod
    def start(cls, job: DecodingJob, state: DecodingState) -> StepBook:
        rows = state.sequence_buffer.shape[0]
        device = state.sequence_buffer.device
        codes = torch.zeros(rows, dtype=torch.int8, device=device)
        return cls(job, state, codes, torch.tensor(job.pad, dtype=torch.long, device=device))

    def commit(
        self, tokens: torch.Tensor, processed: torch.Tensor | None = None, logits: torch.Tensor | None = None
    ) -> bool:
        """Emit ``tokens`` ([rows]; pad on finished rows); True once every row has finished."""
        job, state = self.job, self.state
        if self.any_finished:
            tokens = torch.where(self.codes == 0, tokens, self.pad)
        # Asked before accept, as beam search must: may each row end here (a complete grammar)?
        complete = state.rows.complete_rows()
        state.rows.accept(tokens)
        if job.on_tokens is not None:
            job.on_tokens(tokens)
        if job.settings.output_scores and processed is not None:
            self.scores.append(processed)
        if job.settings.output_logits and logits is not None:
            self.logits.append(logits)
        state.append(tokens)
        fired = job.stop_codes(state.sequences, complete=complete)
        if fired is None:
            return False
        self.codes = torch.where(self.codes == 0, fired, self.codes)
        self.any_finished = True
        # The loop's one host sync, made only on steps where a criterion returned rows.
        return not bool((self.codes == 0).any())

    def running(self) -> torch.Tensor:
        """Bool [rows]: the rows no criterion has finished."""
        return self.codes == 0

    def output(self) -> GenerationOutput:
        return self.job.output(self.state.sequences, self.codes, self.scores, self.logits)
