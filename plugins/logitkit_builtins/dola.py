"""DoLa decoding (``dola_layers``): transformers 4.x's ``_dola_decoding``, contrasting the last layer with an early one.

transformers 5 moved it to a Hub repository; this follows 4.55.4 and is
tested against that release's outputs (tests/fixtures/hf455). Each step the
model's output head is applied to the hidden states of the candidate
("premature") layers as well. With several candidates, the one whose
next-token distribution is furthest from the final layer's (Jensen-Shannon
divergence, averaged over the batch, as 4.x does) is chosen; tokens far
below the final layer's best (under a tenth of its probability) are
removed, and the scores become the final log-probabilities minus the
premature ones. The pipeline's processors (repetition_penalty, ...) and its
selector (greedy, or multinomial for do_sample) then run on those scores.

``'low'`` and ``'high'`` name the lower and upper half of the layers, every
other one (the last 20 or first 20 on models deeper than 40); a list names
layers directly (0: the embeddings), and those past the last are dropped.
Decoder-only models only, as in 4.x.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import ConfigDict

from logitkit.decoding import DecodingJob, GenerationOutput
from logitkit.strict import StrictModel
from logitkit_builtins._hidden_states import record_hidden_states
from logitkit_builtins._options import search_options

#: 4.x's relative-top filter: keep tokens with at least this share of the best token's probability.
RELATIVE_TOP = 0.1


class DolaOptions(StrictModel):
    """``generation.search_options`` for ``search: dola``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: ``low``, ``high``, or the layer indices to contrast with (0: the embedding output).
    dola_layers: Literal["low", "high"] | list[int]


def premature_layers(dola_layers: str | list[int], num_layers: int, tied_embeddings: bool) -> list[int]:
    """The candidate layers 4.x contrasts with, for a model of ``num_layers`` layers."""
    # With tied embeddings the embedding layer's exit is the identity, so 4.x starts higher.
    if not tied_embeddings:
        start = 0
    elif num_layers > 2:
        start = 2
    elif num_layers == 2:
        start = 1
    else:
        start = 0
    if dola_layers == "low":
        if start == num_layers // 2:
            return [start]
        end = num_layers // 2 if num_layers <= 40 else 20
        return list(range(start, end, 2))
    if dola_layers == "high":
        first = num_layers // 2 if num_layers <= 40 else num_layers - 20
        return list(range(first, num_layers, 2))
    return [layer for layer in dola_layers if layer < num_layers]


def relative_top_filter(
    scores: torch.Tensor, baseline: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-softmax both; where the final layer's token is under the threshold: -inf for it, -1e-3 for the baseline."""
    scores_normalized = scores.log_softmax(dim=-1)
    baseline_normalized = baseline.log_softmax(dim=-1)
    sorted_logits = torch.sort(scores_normalized, descending=True).values
    min_thresh = sorted_logits[..., 0]
    probs_thresh = torch.max(scores_normalized, dim=-1).values + math.log(RELATIVE_TOP)
    probs_thresh = torch.min(min_thresh, probs_thresh).unsqueeze(-1)
    below = scores_normalized < probs_thresh
    baseline_normalized[below] = -1e-3
    scores_normalized[below] = -float("inf")
    return scores_normalized, baseline_normalized


def contrast(layers: list[int], premature: dict[int, torch.Tensor], final: torch.Tensor) -> torch.Tensor:
    """4.x's ``_dola_select_contrast``: the filtered final log-probs minus the chosen premature layer's."""
    if len(layers) == 1:
        chosen = layers[0]
    else:
        stacked = torch.stack([premature[i] for i in layers], dim=0)
        softmax_mature = F.softmax(final, dim=-1)
        softmax_premature = F.softmax(stacked, dim=-1)
        average = 0.5 * (softmax_mature[None, :, :] + softmax_premature)
        kl1 = F.kl_div(F.log_softmax(final, dim=-1)[None, :, :], average, reduction="none").mean(-1)
        kl2 = F.kl_div(F.log_softmax(stacked, dim=-1), average, reduction="none").mean(-1)
        # One layer for the whole batch: the divergence is averaged over the rows, as in 4.x.
        js_divs = (0.5 * (kl1 + kl2)).mean(-1)
        chosen = layers[int(js_divs.argmax().item())]
    final_filtered, base = relative_top_filter(final, premature[chosen])
    return final_filtered - base


def dola(job: DecodingJob) -> GenerationOutput:
    options = search_options(DolaOptions, job)
    settings = job.settings
    if job.runner.is_encoder_decoder:
        raise ValueError("dola: DoLa decoding runs on decoder-only models only (as in transformers 4.x)")
    recorder = record_hidden_states(job.runner, "dola")
    config = recorder.config
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = premature_layers(
        options.dola_layers,
        int(text_config.num_hidden_layers),
        bool(getattr(config, "tie_word_embeddings", True)),
    )
    if not layers:
        raise ValueError(f"dola: dola_layers {options.dola_layers!r} names no layer below the last")
    head = recorder.get_output_embeddings()
    if head is None:
        raise ValueError("dola: the model has no output embeddings to apply to early layers")

    state = job.start(expand=1)
    book = job.step_book(state)
    logits = state.logits
    while True:
        hidden = recorder.decoder_hidden_states()
        premature = {i: head(hidden[i][:, -1, :]).float() for i in layers}
        contrasted = contrast(layers, premature, logits)
        ctx = job.context(state, state.sequences)
        tokens, processed = job.choose(contrasted, ctx, keep_scores=settings.output_scores)
        if book.commit(tokens, processed, logits):
            break
        logits = job.runner.advance(state.sequences, state.attention_mask)
    return book.output()


dola.Config = DolaOptions  # type: ignore[attr-defined]
