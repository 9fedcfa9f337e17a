"""The extension points besides the hooks, for the hook reference: the step context and the search job.

Each field of ``StepContext`` and ``DecodingJob`` needs a line here; rendering
fails on a field without one, so ``python -m logitkit.docs_gen --check`` (and
the test that runs it) fails when a field is added undocumented.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from logitkit.decoding import DecodingJob
from logitkit.processor import StepContext

#: ``StepContext`` field -> what it holds.
CONTEXT_FIELDS: dict[str, str] = {
    "input_ids": "the whole sequence so far, prompt and generated tokens, `[batch, length]` (never write into it)",
    "prompt_lengths": "`[batch]` int64: each row's prompt length in `input_ids`, padding included (rows may differ)",
    "steps": "`[batch]` int64: each row's number of generated tokens (rows may be at different steps)",
    "tokens": "the config's `tokens:` section (`eos`, `bos`, `pad`, `decoder_start`, `vocab_size`); `ctx.eos_token_ids` lists eos",
    "attention_mask": "1 for real tokens, 0 for left padding, or None",
    "encoder_input_ids": "an encoder-decoder model's encoder input, or None (for the encoder processors)",
    "tokenizer": "the tokenizer the caller passed, or None: a processor that needs one lists `\"tokenizer\"` in `needs`",
    "model": "the model, or None (classifier-free guidance runs it a second time)",
    "seeds": "per-row int64 seeds, or None: draw random numbers from them (`logitkit.sampling`) so a row never depends on the others",
    "beam_search": "True inside beam search, whose scores are log-softmax values, as in transformers",
    "extra": "every other context key the caller passed (`Pipeline.from_config(cfg, my_key=...)`)",
    "state": "the batch's live `BatchState` when a host drives one, else None (see [state and hosts](../state.md))",
}
#: ``DecodingJob`` field -> what it holds.
JOB_FIELDS: dict[str, str] = {
    "runner": "the model wrapper: `job.start()` runs the prefill, `runner.advance(sequences, mask)` returns the next logits",
    "pipeline": "the config's pipeline: its processors, selector, `tokens` and `generation`",
    "settings": "the `generation:` section (with `generate()`'s keyword overrides); the strategy's own parameters are `settings.search_options`",
    "input_ids": "the (decoder) prompts, left-padded, one row per prompt",
    "attention_mask": "the prompts' mask",
    "eos": "the eos token ids",
    "pad": "the pad token id that fills finished rows",
    "max_length": "no sequence grows past this total length",
    "criteria": "the stopping criteria; `job.stop_codes(sequences)` asks them all",
    "encoder_input_ids": "the encoder input of an encoder-decoder model, or None",
    "encoder_attention_mask": "its mask, or None",
    "seeds": "per-prompt sample seeds, or None to let the selector draw them",
    "tokenizer": "the tokenizer passed to `generate()`, or None",
    "model": "the model passed to `generate()`",
    "healed": "the token-healing result under `token_healing: constrain`, or None",
    "on_tokens": "called with each step's chosen tokens (`[rows]`) by a strategy that picks one token per row per step; streaming uses it",
    "extra": "anything else `generate()` was given",
}

CONTEXT_INTRO = """
## The step context

Every `apply(scores, ctx)` receives a `logitkit.StepContext` (and so does a
selector's `select`). Its fields:
"""

TOKENIZER_TEXT = """
### How a tokenizer reaches `ctx.tokenizer`

- **CLI:** `logitkit generate` passes the model's tokenizer (the demo model's,
  or the one in the `--model` folder).
- **`logitkit.generate(model, ids, pipe, tokenizer=tok)`:** the argument, else
  the pipeline's own context (below).
- **`pipe.as_hf()` inside `model.generate`:** transformers passes no tokenizer
  to a logits processor, so build the pipeline with it:
  `Pipeline.from_config(cfg, tokenizer=tok).as_hf()`. Any keyword of
  `from_config` reaches every step, as a field of the same name or in `ctx.extra`.
"""

STRATEGY_INTRO = """
## Writing a search strategy

A search strategy is a function `strategy(job) -> GenerationOutput`, registered
with `register_search_strategies` and chosen by `generation.search: NAME`. The
built-in `decode`, `beam_search`, `beam_sample`, `group_beam_search`,
`contrastive_search`, `dola` and `constrained_beam_search`
(`plugins/logitkit_builtins/search.py`), and the speculative `prompt_lookup`,
`assisted`, `early_exit` and `universal_assisted`
(`plugins/logitkit_builtins/speculative.py`), are written this way. A strategy that
takes parameters declares them as a pydantic model in `strategy.Config`;
`generation.search_options` is then validated against it with the rest of the
config (errors read `generation.search_options.width: ...`), and the strategy
reads it with `strategy.Config.model_validate(job.settings.search_options)`.

```python
import logitkit
from pydantic import BaseModel, Field
from logitkit.decoding import DecodingJob, GenerationOutput


class FixedLengthOptions(BaseModel):
    steps: int = Field(default=8, ge=1)


def fixed_length(job: DecodingJob) -> GenerationOutput:
    # Exactly `steps` tokens per row, chosen by the pipeline, ignoring eos (a toy).
    options = FixedLengthOptions.model_validate(job.settings.search_options)
    state = job.start(expand=1)
    logits = state.logits
    for _ in range(options.steps):
        tokens, _ = job.choose(logits, job.context(state, state.sequences), keep_scores=False)
        state.rows.accept(tokens)  # the rows' state (steps, stateful processors) moves on
        state.append(tokens)
        logits = job.runner.advance(state.sequences, state.attention_mask)
    return GenerationOutput(
        sequences=state.sequences.clone(),
        finish_reasons=["length"] * job.batch_size,
        prompt_length=job.prompt_length,
    )


fixed_length.Config = FixedLengthOptions


@logitkit.hookimpl
def register_search_strategies(register):
    register("fixed_length", fixed_length, "exactly search_options.steps tokens per row")
```

```yaml
generation:
  search: fixed_length
  search_options: {steps: 3}
```

The `DecodingJob` a strategy receives:
"""


def _table(cls: Any, docs: dict[str, str]) -> str:
    rows = ["| field | what it holds |", "| --- | --- |"]
    for f in dataclasses.fields(cls):
        if f.name not in docs:
            raise KeyError(f"{cls.__name__}.{f.name} has no line in logitkit.docs_context; add one")
        rows.append(f"| `{f.name}` | {docs[f.name]} |")
    return "\n".join(rows) + "\n"


def _methods(cls: Any) -> str:
    lines = ["\nIts methods:\n"]
    for name, fn in inspect.getmembers(cls, inspect.isfunction):
        if name.startswith("_"):
            continue
        doc = (inspect.getdoc(fn) or "").splitlines()
        signature = inspect.signature(fn)
        params = list(signature.parameters.values())[1:]  # without self
        text = str(signature.replace(parameters=params)).replace("'", "")
        lines.append(f"- `job.{name}{text}`: {doc[0] if doc else ''}")
    return "\n".join(lines) + "\n"


def render_extension_points() -> str:
    """The step-context and search-strategy sections of the hook reference."""
    return (
        CONTEXT_INTRO + "\n" + _table(StepContext, CONTEXT_FIELDS) + TOKENIZER_TEXT
        + STRATEGY_INTRO + "\n" + _table(DecodingJob, JOB_FIELDS) + _methods(DecodingJob)
    )  # fmt: skip
