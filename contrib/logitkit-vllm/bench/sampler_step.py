"""One sampling step in vLLM's own V1 ``Sampler``, with and without logitkit-vllm, as ratios from one run.

Run in the vLLM venv (contrib/logitkit-vllm/ci/build_venv.sh):

    python contrib/logitkit-vllm/bench/sampler_step.py [--batch 64] [--vocab 151936] [--repeats 15] [--pairs 61] [--threads 1]

(a) the bare sampler (temperature 1, no truncation); (b) the same with the
logitkit processor loaded and no request using it; (c) every row running
logitkit's temperature/top_k/top_p/min_p, vLLM sampling at temperature 1;
(d) vLLM's own temperature/top_k/top_p. Medians per step.

(b) against (a) is a question of a few percent, below the machine's swings
from one second to the next, so it is also measured in pairs: each pair
times (a) and (b) back to back (in alternating order, so drift cancels), and
the median of the per-pair ratios comes with a bootstrap 95% interval.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

os.environ.setdefault("VLLM_TARGET_DEVICE", "cpu")

import torch
import vllm.utils.torch_utils as torch_utils

torch_utils.PIN_MEMORY = False  # CPU: no pinned host buffers

from logitkit_vllm.v1 import LogitkitLogitsProcessor  # noqa: E402 (after PIN_MEMORY is set)
from vllm import SamplingParams  # noqa: E402 (after PIN_MEMORY is set)
from vllm.v1.sample.logits_processor import BatchUpdateBuilder, LogitsProcessors  # noqa: E402 (after PIN_MEMORY is set)
from vllm.v1.sample.metadata import SamplingMetadata  # noqa: E402 (after PIN_MEMORY is set)
from vllm.v1.sample.sampler import Sampler  # noqa: E402 (after PIN_MEMORY is set)

CONFIG = {"processors": [{"temperature": 0.8}, {"top_k": 50}, {"top_p": 0.9}, {"min_p": 0.05}]}


def metadata(batch: int, processors: list[object], *, temperature: float, top_k: int | None, top_p: float | None) -> SamplingMetadata:
    return SamplingMetadata(
        temperature=torch.full((batch,), temperature),
        all_greedy=False,
        all_random=True,
        top_p=None if top_p is None else torch.full((batch,), top_p),
        top_k=None if top_k is None else torch.full((batch,), top_k, dtype=torch.int32),
        generators={},
        max_num_logprobs=None,
        no_penalties=True,
        prompt_token_ids=None,
        frequency_penalties=torch.zeros(batch),
        presence_penalties=torch.zeros(batch),
        repetition_penalties=torch.ones(batch),
        output_token_ids=[[] for _ in range(batch)],
        allowed_token_ids_mask=None,
        bad_words_token_ids={},
        logitsprocs=LogitsProcessors(processors),  # type: ignore[arg-type]
    )


def loaded_processor(batch: int, config: object | None) -> LogitkitLogitsProcessor:
    processor = LogitkitLogitsProcessor(None, torch.device("cpu"), False)  # type: ignore[arg-type]
    builder = BatchUpdateBuilder()
    extra = None if config is None else {"logitkit": config}
    builder.added.extend((i, SamplingParams(extra_args=extra), list(range(1, 17)), []) for i in range(batch))
    processor.update_state(builder.get_and_reset(batch))
    return processor


def medians_ms(sampler: Sampler, logits: torch.Tensor, cases: dict[str, SamplingMetadata], repeats: int) -> dict[str, float]:
    """Rounds of one step per case, interleaved, so load swings on a shared machine hit every case alike."""
    for md in cases.values():
        sampler(logits.clone(), md)
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, md in cases.items():
            scores = logits.clone()
            start = time.perf_counter()
            sampler(scores, md)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1000 for name, t in times.items()}


def paired_ratios(sampler: Sampler, logits: torch.Tensor, a: SamplingMetadata, b: SamplingMetadata, pairs: int) -> list[float]:
    """Per pair: time(b) / time(a), the two timed back to back, the order alternating pair by pair."""
    def once(md: SamplingMetadata) -> float:
        scores = logits.clone()
        start = time.perf_counter()
        sampler(scores, md)
        return time.perf_counter() - start

    ratios = []
    for i in range(pairs):
        if i % 2:
            tb, ta = once(b), once(a)
        else:
            ta, tb = once(a), once(b)
        ratios.append(tb / ta)
    return ratios


def bootstrap_median_interval(values: list[float], draws: int = 2000) -> tuple[float, float]:
    """A 95% interval for the median of ``values`` (percentile bootstrap, fixed seed)."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(draws))
    return medians[int(0.025 * draws)], medians[int(0.975 * draws) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=151_936)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--pairs", type=int, default=61, help="paired rounds of (a) and (b)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)  # one thread: steadier medians on a shared machine
    b = args.batch
    torch.manual_seed(0)
    logits = torch.randn(b, args.vocab) * 4
    sampler = Sampler()
    cases = {
        "(a) vLLM bare sampler": metadata(b, [], temperature=1.0, top_k=None, top_p=None),
        "(b) logitkit loaded, unused": metadata(b, [loaded_processor(b, None)], temperature=1.0, top_k=None, top_p=None),
        "(c) logitkit T/top_k/top_p/min_p": metadata(b, [loaded_processor(b, CONFIG)], temperature=1.0, top_k=None, top_p=None),
        "(d) vLLM T/top_k/top_p": metadata(b, [], temperature=0.8, top_k=50, top_p=0.9),
    }
    results = medians_ms(sampler, logits, cases, args.repeats)
    bare = results["(a) vLLM bare sampler"]
    print(f"batch {b}, vocab {args.vocab}, median of {args.repeats} interleaved rounds, torch threads {torch.get_num_threads()}")
    for name, ms in results.items():
        print(f"{name:36s} {ms:9.2f} ms  {ms / bare:6.2f}x bare")
    ratios = paired_ratios(sampler, logits, cases["(a) vLLM bare sampler"], cases["(b) logitkit loaded, unused"], args.pairs)
    low, high = bootstrap_median_interval(ratios)
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    print(
        f"(b) / (a) in {args.pairs} pairs: median {statistics.median(ratios):.4f}, 95% interval {low:.4f}-{high:.4f}, "
        f"quartiles {q1:.4f}-{q3:.4f}"
    )
    unused = loaded_processor(b, None)
    start = time.perf_counter()
    for _ in range(1000):
        unused.update_state(None)
        unused.apply(logits)
    own_us = (time.perf_counter() - start) * 1000  # per call, in microseconds
    print(f"(b) the unused processor's own update_state + apply: {own_us:.2f} us per step ({own_us / 1000 / bare:.1e} of (a))")
    print(f"(d) / (c) = {results['(d) vLLM T/top_k/top_p'] / results['(c) logitkit T/top_k/top_p/min_p']:.1f}")


if __name__ == "__main__":
    main()
