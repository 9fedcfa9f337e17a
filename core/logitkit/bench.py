"""Benchmarks: logitkit against transformers' own processors, on the same inputs, in one run.

Each configuration times a logitkit callable and the transformers equivalent
on identical inputs, interleaved call by call so both see the same machine
load, plus the memory-bound floor: one ``torch.softmax`` over the same
scores. Medians are reported. Timing is never asserted in tests: machines are
noisy; ``logitkit bench`` prints the numbers and whether each target is met.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch

from logitkit.bench_speculative import speculative_case

log = logging.getLogger("logitkit.bench")

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
#: Spread of the synthetic logits: a std-4 Gaussian row has 3-6 nats of entropy at 152k tokens,
#: and top_p 0.9 keeps a few hundred tokens, like a language model's next-token distribution.
LOGIT_SCALE = 4.0

Timed = Callable[[], Any]
#: A target: none, one figure, or one per batch size (ANY_BATCH: the others).
Target = float | dict[int, float] | None
ANY_BATCH = 0


@dataclass(frozen=True)
class Shape:
    batch: int = 8
    vocab: int = 151936
    dtype: str = "fp32"
    seed: int = 0
    #: Tokens each generate() produces.
    new_tokens: int = 128


@dataclass(frozen=True)
class Case:
    """One configuration: what each side runs, and the targets it should meet."""

    name: str
    description: str
    #: Builds ``(logitkit, transformers, floor)`` callables; floor may be None.
    build: Callable[[Shape], tuple[Timed, Timed, Timed | None]]
    unit: str = "ms"
    #: logitkit must be at least this many times faster (or, for tokens/s, this many times the rate):
    #: one figure for every batch size, or one per batch size (batch sizes not listed have none).
    min_speedup: Target = 1.0
    #: logitkit's time must be at most this many softmax passes (same forms).
    max_floor_ratio: Target = None
    #: Cap on repeats for slow cases (a whole generate()).
    max_repeat: int | None = None
    #: False when the case has its own batch size (generate): it runs once, not per batch size.
    batched: bool = True
    #: What the second callable is: transformers, or another logitkit run (mixed steps).
    reference: str = "transformers"
    #: The rows a case with its own batch size runs (``batched=False``), for the report.
    rows: int | None = None
    #: logitkit's time minus the reference's must be at most this many softmax passes.
    max_added_floor_ratio: float | None = None


def target_at(target: Target, batch: int) -> float | None:
    """The figure a target sets at ``batch``."""
    if isinstance(target, dict):
        return target.get(batch, target.get(ANY_BATCH))
    return target


@dataclass
class Result:
    name: str
    description: str
    unit: str
    logitkit: float
    transformers: float
    speedup: float
    floor: float | None = None
    floor_ratio: float | None = None
    #: What the ``transformers`` figure measured (see ``Case.reference``).
    reference: str = "transformers"
    #: (logitkit - reference) / floor: what logitkit adds to the reference, in softmax passes.
    added_floor_ratio: float | None = None
    targets: list[str] = field(default_factory=list)
    met: bool = True
    #: Fastest single call of each side (ms; generate: tokens/s): less sensitive to other load than medians.
    best: dict[str, float] = field(default_factory=dict)
    batch: int = 0
    dtype: str = "fp32"
    #: transformers' time in softmax passes.
    transformers_floor_ratio: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def logits(shape: Shape, generator_offset: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(shape.seed + generator_offset)
    return (torch.randn(shape.batch, shape.vocab, generator=gen) * LOGIT_SCALE).to(
        DTYPES[shape.dtype]
    )


def history(shape: Shape, length: int, distinct: int | None = None) -> torch.Tensor:
    """Token ids ``[batch, length]``; ``distinct`` limits the alphabet so n-grams repeat, as text does."""
    gen = torch.Generator().manual_seed(shape.seed + 1)
    return torch.randint(0, distinct or shape.vocab, (shape.batch, length), generator=gen)


def softmax_floor(scores: torch.Tensor) -> Timed:
    return lambda: torch.softmax(scores, dim=-1)


def hf_sample(processors: Any, ids: torch.Tensor, scores: torch.Tensor) -> Timed:
    """transformers' sampling step: the processor list, softmax, torch.multinomial."""

    def step() -> torch.Tensor:
        processed = processors(ids, scores)
        return torch.multinomial(torch.softmax(processed, dim=-1), 1).squeeze(1)

    return step


def logitkit_sample(config: Any, ids: torch.Tensor) -> Callable[[torch.Tensor], Timed]:
    from logitkit.pipeline import Pipeline

    pipe = Pipeline.from_config(config, seeds=torch.arange(ids.shape[0]))
    return lambda scores: lambda: pipe.next_tokens(ids, scores)


# -- the shipped configurations -------------------------------------------------------------


def _chain(shape: Shape) -> tuple[Timed, Timed, Timed | None]:
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        MinPLogitsWarper,
        RepetitionPenaltyLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    scores, ids = logits(shape), history(shape, 512)
    config = [
        {"repetition_penalty": 1.1},
        {"temperature": 0.8},
        {"top_k": 50},
        {"top_p": 0.9},
        {"min_p": 0.05},
    ]
    hf = LogitsProcessorList(
        [
            RepetitionPenaltyLogitsProcessor(1.1),
            TemperatureLogitsWarper(0.8),
            TopKLogitsWarper(50),
            TopPLogitsWarper(0.9),
            MinPLogitsWarper(0.05),
        ]
    )
    return logitkit_sample(config, ids)(scores), hf_sample(hf, ids, scores), softmax_floor(scores)


def sampling_case(
    config: list[dict[str, Any]], warpers: Callable[[], list[Any]]
) -> Callable[[Shape], tuple[Timed, Timed, Timed | None]]:
    """A case running ``config`` then sampling, against transformers' ``warpers()`` then multinomial."""

    def build(shape: Shape) -> tuple[Timed, Timed, Timed | None]:
        from transformers.generation.logits_process import LogitsProcessorList

        scores, ids = logits(shape), history(shape, 16)
        hf = LogitsProcessorList(warpers())
        return (
            logitkit_sample(config, ids)(scores),
            hf_sample(hf, ids, scores),
            softmax_floor(scores),
        )

    return build


def _warpers(*made: tuple[str, dict[str, Any]]) -> Callable[[], list[Any]]:
    """transformers warpers by class name and keyword arguments, imported when the case runs."""

    def make() -> list[Any]:
        from transformers.generation import logits_process

        return [getattr(logits_process, name)(**kwargs) for name, kwargs in made]

    return make


def _no_repeat_ngram(shape: Shape) -> tuple[Timed, Timed, Timed | None]:
    from transformers.generation.logits_process import NoRepeatNGramLogitsProcessor

    from logitkit.pipeline import Pipeline

    # A small alphabet makes the 2-token prefix recur, so bans actually happen.
    scores, ids = logits(shape), history(shape, 2048, distinct=64)
    pipe = Pipeline.from_config([{"no_repeat_ngram_size": 3}])
    hf = NoRepeatNGramLogitsProcessor(3)
    return lambda: pipe(ids, scores), lambda: hf(ids, scores), softmax_floor(scores)


def bias_table(shape: Shape, entries: int) -> dict[tuple[int, ...], float]:
    """``entries`` distinct sequences of 1-3 tokens with biases in [-3, 3)."""
    gen = torch.Generator().manual_seed(shape.seed + 2)
    table: dict[tuple[int, ...], float] = {}
    while len(table) < entries:
        length = int(torch.randint(1, 4, (1,), generator=gen))
        key = tuple(int(t) for t in torch.randint(0, shape.vocab, (length,), generator=gen))
        table[key] = round(float(torch.rand(1, generator=gen)) * 6 - 3, 3)
    return table


def _sequence_bias(shape: Shape) -> tuple[Timed, Timed, Timed | None]:
    from transformers.generation.logits_process import SequenceBiasLogitsProcessor

    from logitkit.pipeline import Pipeline

    scores, ids = logits(shape), history(shape, 512)
    table = bias_table(shape, 1000)
    pipe = Pipeline.from_config(
        [{"name": "sequence_bias", "sequence_bias": [[list(k), v] for k, v in table.items()]}]
    )
    hf = SequenceBiasLogitsProcessor(sequence_bias=[[list(k), v] for k, v in table.items()])
    return lambda: pipe(ids, scores), lambda: hf(ids, scores), softmax_floor(scores)


#: The JSON-schema case: a row inside a string value, where most of the vocabulary is allowed.
CONSTRAINED_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"name": {"type": "string", "maxLength": 64}},
                                      "required": ["name"], "additionalProperties": False}  # fmt: skip
CONSTRAINED_PREFIX = '{"name":"ab'


def _json_schema(shape: Shape) -> tuple[Timed, Timed, Timed | None]:
    """The chain with a json_schema constraint against the same chain without it, per sampling step.

    The parsers use a tokenizer as wide as the bench's vocabulary (the demo
    tokenizer grown with filler tokens, ``logitkit.bench_tokenizer``).
    """
    from logitkit.bench_tokenizer import wide_tokenizer
    from logitkit.demo import load_codec
    from logitkit.pipeline import Pipeline

    codec = load_codec()
    tokenizer = wide_tokenizer(shape.vocab)
    prefix = codec.encode(CONSTRAINED_PREFIX)[1:]  # the codec's bos is part of no output
    scores = logits(shape)
    ids = torch.cat([history(shape, 64), torch.tensor([prefix]).repeat(shape.batch, 1)], dim=1)
    chain = [{"temperature": 0.8}, {"top_k": 50}, {"top_p": 0.9}]
    seeds = torch.arange(shape.batch)
    constrained = Pipeline.from_config([{"json_schema": CONSTRAINED_SCHEMA}, *chain], tokenizer=tokenizer, seeds=seeds)
    plain = Pipeline.from_config(chain, seeds=seeds)
    # A step without accept: every call masks the same parser positions.
    with_ctx = constrained.start(ids, steps=len(prefix)).context(ids)
    without_ctx = plain.start(ids, steps=len(prefix)).context(ids)
    return lambda: constrained.choose(scores, with_ctx), lambda: plain.choose(scores, without_ctx), softmax_floor(scores)


#: The tiny model of the generate() case.
GENERATE_MODEL: dict[str, Any] = {"vocab_size": 32000, "num_hidden_layers": 2, "hidden_size": 128, "intermediate_size": 256,
                  "num_attention_heads": 4, "num_key_value_heads": 4}  # fmt: skip
GENERATE_BATCH, GENERATE_PROMPT = 4, 16


def _generate(shape: Shape) -> tuple[Timed, Timed, Timed | None]:
    from transformers import LlamaConfig, LlamaForCausalLM

    from logitkit.generation import generate

    torch.manual_seed(shape.seed)
    model = LlamaForCausalLM(
        LlamaConfig(**GENERATE_MODEL, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    )
    model.eval()  # type: ignore[no-untyped-call]
    model.generation_config.eos_token_id = None  # both sides produce every one of the new tokens
    model.generation_config.pad_token_id = 0
    gen = torch.Generator().manual_seed(shape.seed + 3)
    prompt = torch.randint(
        3, GENERATE_MODEL["vocab_size"], (GENERATE_BATCH, GENERATE_PROMPT), generator=gen
    )
    mask = torch.ones_like(prompt)
    config = [{"temperature": 0.8}, {"top_k": 50}, {"top_p": 0.9}]
    new = shape.new_tokens

    def ours() -> Any:
        with torch.inference_mode():
            out = generate(model, prompt, config, attention_mask=mask, seeds=list(range(GENERATE_BATCH)),
                           eos_token_id=[], max_new_tokens=new)  # fmt: skip
        assert out.sequences.shape[1] == GENERATE_PROMPT + new
        return out

    def theirs() -> Any:
        with torch.inference_mode():
            out = model.generate(prompt, attention_mask=mask, do_sample=True, temperature=0.8, top_k=50, top_p=0.9,
                                 max_new_tokens=new, min_new_tokens=new, eos_token_id=None, pad_token_id=0)  # fmt: skip
        assert out.shape[1] == GENERATE_PROMPT + new
        return out

    return ours, theirs, None


#: Rows of the mixed-steps case, each at its own step.
MIXED_ROWS = 64
MIXED_CHAIN = [
    {"repetition_penalty": 1.1},
    {"temperature": 0.8},
    {"top_k": 50},
    {"top_p": 0.9},
    {"min_p": 0.05},
]


def _mixed_steps(shape: Shape) -> tuple[Timed, Timed, Timed | None]:
    """The chain through a batch state whose 64 rows sit at 64 different steps, against all at one step."""
    from logitkit.pipeline import Pipeline

    rows = replace(shape, batch=MIXED_ROWS)
    scores, ids = logits(rows), history(rows, 512 + MIXED_ROWS)
    pipe = Pipeline.from_config(MIXED_CHAIN)
    length = ids.shape[1]
    seeds = torch.arange(MIXED_ROWS)

    def state_at(steps: list[int]) -> Any:
        state = pipe.new_state()
        for row, step in enumerate(steps):
            # Row ``row`` holds its own last 512 + step tokens; the columns left of them are batch padding.
            own = ids[row, length - 512 - step :]
            state.add([own.tolist()], prompt_lengths=[own.shape[0]], steps=step, seeds=[int(seeds[row])])
        return state

    mixed = state_at(list(range(MIXED_ROWS)))
    same = state_at([MIXED_ROWS // 2] * MIXED_ROWS)
    return (
        lambda: pipe.choose(scores, mixed.context(ids)),
        lambda: pipe.choose(scores, same.context(ids[:, -(512 + MIXED_ROWS // 2) :])),
        softmax_floor(scores),
    )


#: The chain's targets: the state issue's 40x transformers at batch 8; softmax passes by batch size.
CHAIN_SPEEDUP = {8: 40.0, ANY_BATCH: 1.0}
CHAIN_FLOOR = {1: 3.0, 8: 2.0, 64: 2.0}
#: top_p, alone or after temperature: at most 5 softmax passes at every batch size.
TOP_P_FLOOR = 5.0
#: min_p: about two passes (the best score, then the cut and the draw).
MIN_P_FLOOR = {8: 2.5, 64: 2.5}

CASES: tuple[Case, ...] = (
    Case("chain", "repetition_penalty 1.1, temperature 0.8, top_k 50, top_p 0.9, min_p 0.05, then sampling; history 512",
         _chain, min_speedup=CHAIN_SPEEDUP, max_floor_ratio=CHAIN_FLOOR),
    Case("top_p", "top_p 0.9, then sampling",
         sampling_case([{"top_p": 0.9}], _warpers(("TopPLogitsWarper", {"top_p": 0.9}))),
         max_floor_ratio=TOP_P_FLOOR),
    Case("top_p_temperature", "temperature 0.8, top_p 0.9, then sampling",
         sampling_case([{"temperature": 0.8}, {"top_p": 0.9}],
                       _warpers(("TemperatureLogitsWarper", {"temperature": 0.8}), ("TopPLogitsWarper", {"top_p": 0.9}))),
         max_floor_ratio=TOP_P_FLOOR),
    Case("min_p", "min_p 0.05, then sampling",
         sampling_case([{"min_p": 0.05}], _warpers(("MinPLogitsWarper", {"min_p": 0.05}))),
         max_floor_ratio=MIN_P_FLOOR),
    Case("top_k", "top_k 50, then sampling",
         sampling_case([{"top_k": 50}], _warpers(("TopKLogitsWarper", {"top_k": 50})))),
    Case("typical_p", "typical_p 0.9, then sampling",
         sampling_case([{"typical_p": 0.9}], _warpers(("TypicalLogitsWarper", {"mass": 0.9})))),
    Case("epsilon_cutoff", "epsilon_cutoff 3e-4, then sampling",
         sampling_case([{"epsilon_cutoff": 3e-4}], _warpers(("EpsilonLogitsWarper", {"epsilon": 3e-4})))),
    Case("eta_cutoff", "eta_cutoff 3e-4, then sampling",
         sampling_case([{"eta_cutoff": 3e-4}], _warpers(("EtaLogitsWarper", {"epsilon": 3e-4})))),
    Case("top_h", "top_h 0.4, then sampling",
         sampling_case([{"top_h": 0.4}], _warpers(("TopHLogitsWarper", {"top_h": 0.4})))),
    Case("mixed_steps", f"the chain, {MIXED_ROWS} rows at {MIXED_ROWS} different steps in one call, "
         "against the same rows all at one step", _mixed_steps, min_speedup=1 / 1.2, batched=False,
         reference="same step", rows=MIXED_ROWS),
    Case("no_repeat_ngram", "no_repeat_ngram_size 3, history 2048 (processing only)", _no_repeat_ngram, min_speedup=10.0),
    Case("sequence_bias", "sequence_bias with 1,000 sequences of 1-3 tokens, history 512 (processing only)", _sequence_bias),
    Case("json_schema", "json_schema constraint (row inside a string), then temperature 0.8, top_k 50, top_p 0.9, "
         "sampling; against the same chain without the constraint", _json_schema,
         reference="no constraint", min_speedup=None, max_added_floor_ratio=1.0),
    Case("generate", f"generate(): Llama 2 layers, vocab 32k, batch {GENERATE_BATCH}, T 0.8 / top_k 50 / top_p 0.9",
         _generate, unit="tokens/s", min_speedup=1.3, max_repeat=3, batched=False),
    Case("prompt_lookup", "demo model, a code prompt that repeats its context: prompt lookup (10 tokens, 3-grams) "
         "against plain greedy, identical tokens", speculative_case("prompt_lookup", {"num_tokens": 10, "max_ngram": 3}),
         unit="tokens/s", min_speedup=1.5, max_repeat=5, batched=False, reference="plain greedy", rows=1),
    Case("early_exit", "demo model, same prompt: drafts from its first 2 of 4 layers (5 per round) against plain greedy",
         speculative_case("early_exit", {"assistant_early_exit": 2, "num_assistant_tokens": 5}),
         unit="tokens/s", min_speedup=None, max_repeat=5, batched=False, reference="plain greedy", rows=1),
    Case("assisted", "demo model, same prompt: a 1-layer copy of it as assistant (5 tokens per round) against plain greedy",
         speculative_case("assisted", {"num_assistant_tokens": 5}, assistant_layers=1),
         unit="tokens/s", min_speedup=None, max_repeat=5, batched=False, reference="plain greedy", rows=1),
)  # fmt: skip

#: The batch sizes a default run covers: interactive use, the old default, a serving engine.
DEFAULT_BATCHES = (1, 8, 64)


def case_names() -> list[str]:
    return [case.name for case in CASES]


#: Seconds a case's timed rounds may take before its rounds are cut, down to MIN_REPEAT of them.
CASE_BUDGET_S, MIN_REPEAT = 20.0, 3

#: Calls per side in a row: a side's first call after the other side's runs on caches the other side
#: filled, so each side runs in short bursts and every call of the burst is timed.
BURST = 3


#: Clocks a run can use: wall time, or the process's CPU time (time.process_time), which leaves out
#: the time the process waited for a core that other programs held. With one torch thread the CPU
#: time of a call is the wall time it takes on an idle core.
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def timings(
    calls: Sequence[Timed],
    repeat: int,
    warmup: int = 2,
    burst: int = BURST,
    clock: Callable[[], float] = time.perf_counter,
) -> list[list[float]]:
    """Seconds per call for each callable: bursts of ``burst`` calls, interleaved side by side.

    Interleaving makes both sides see the same machine load; bursts keep one
    side from paying for the cache state the other left behind.
    """
    for _ in range(warmup):
        for call in calls:
            call()
    samples: list[list[float]] = [[] for _ in calls]
    for _ in range(repeat):
        for i, call in enumerate(calls):
            for _ in range(burst):
                start = clock()
                call()
                samples[i].append(clock() - start)
    return samples


def run_case(case: Case, shape: Shape, repeat: int, clock: str = "wall") -> Result:
    ours, theirs, floor = case.build(shape)
    repeat = min(repeat, case.max_repeat) if case.max_repeat else repeat
    calls = [ours, theirs] + ([floor] if floor is not None else [])
    if not case.max_repeat:
        # One untimed round: it warms up, and sizes the rounds of slow cases (transformers at
        # batch 64) to the time budget.
        started = time.perf_counter()
        for call in calls:
            call()
        round_s = (time.perf_counter() - started) * BURST
        repeat = max(MIN_REPEAT, min(repeat, int(CASE_BUDGET_S / max(round_s, 1e-9))))
    samples = timings(
        calls,
        repeat,
        warmup=1,
        burst=1 if case.max_repeat else BURST,
        clock=CLOCKS[clock],
    )
    times = [statistics.median(s) for s in samples]
    fastest = [min(s) for s in samples]
    sides = ["logitkit", "transformers", "floor"]
    if case.unit == "tokens/s":
        tokens = (case.rows or GENERATE_BATCH) * shape.new_tokens
        lk, hf = tokens / times[0], tokens / times[1]
        speedup = lk / hf
        result = Result(case.name, case.description, case.unit, lk, hf, speedup, reference=case.reference)
        result.best = {side: tokens / t for side, t in zip(sides, fastest, strict=False)}
    else:
        lk, hf = times[0] * 1e3, times[1] * 1e3
        result = Result(case.name, case.description, case.unit, lk, hf, hf / lk, reference=case.reference)
        result.best = {side: t * 1e3 for side, t in zip(sides, fastest, strict=False)}
        if floor is not None:
            result.floor = times[2] * 1e3
            result.floor_ratio = lk / result.floor
            result.transformers_floor_ratio = hf / result.floor
            result.added_floor_ratio = (lk - hf) / result.floor
    result.batch, result.dtype = case.rows or shape.batch, shape.dtype
    min_speedup = target_at(case.min_speedup, shape.batch)
    if min_speedup is not None:
        result.targets.append(
            f">= {min_speedup:g}x {case.reference}"
            if case.reference == "transformers" or case.unit == "tokens/s"
            else f"<= {1 / min_speedup:.3g}x {case.reference}"
        )
        result.met &= result.speedup >= min_speedup
    max_floor = target_at(case.max_floor_ratio, shape.batch)
    if max_floor is not None and result.floor_ratio is not None:
        result.targets.append(f"<= {max_floor:g}x softmax")
        result.met &= result.floor_ratio <= max_floor
    if case.max_added_floor_ratio is not None and result.added_floor_ratio is not None:
        result.targets.append(f"adds <= {case.max_added_floor_ratio:g}x softmax to {case.reference}")
        result.met &= result.added_floor_ratio <= case.max_added_floor_ratio
    return result


def run(
    shape: Shape,
    repeat: int = 10,
    only: Sequence[str] | None = None,
    progress: Callable[[int, int, Case, Shape], None] | None = None,
    clock: str = "wall",
    batches: Sequence[int] | None = None,
    dtypes: Sequence[str] | None = None,
) -> list[Result]:
    """Run the selected cases (all when ``only`` is empty) at each batch size and dtype.

    ``batches`` and ``dtypes`` default to the shape's own; a case with its
    own batch size runs once per dtype. ``progress(i, n, case, shape)`` is
    called before each run.
    """
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}; known: {', '.join(CLOCKS)}")
    unknown = sorted(set(only or ()) - set(case_names()))
    if unknown:
        raise ValueError(
            f"unknown bench case(s) {', '.join(unknown)}; known: {', '.join(case_names())}"
        )
    chosen = [case for case in CASES if not only or case.name in only]
    plan: list[tuple[Case, Shape]] = []
    for dtype in dtypes or [shape.dtype]:
        for case in chosen:
            sizes = (batches or [shape.batch]) if case.batched else [shape.batch]
            plan += [(case, replace(shape, batch=b, dtype=dtype)) for b in sizes]
    results = []
    for i, (case, case_shape) in enumerate(plan):
        if progress is not None:
            progress(i, len(plan), case, case_shape)
        log.debug("bench %s at batch %d", case.name, case_shape.batch)
        results.append(run_case(case, case_shape, repeat, clock))
    return results
