"""Time one green-list watermark step: logitkit (one tensor program) against transformers (a loop over rows).

    python examples/bench_greenlist.py            # CPU, one thread
    python examples/bench_greenlist.py --device cuda

Prints milliseconds per step; both sides produce identical scores on CPU (checked here too).
"cold" builds a new processor per call (no green list cached); "cached" repeats the
same step, so every green list comes from the processor's cache (a best case).
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers.generation.logits_process import WatermarkLogitsProcessor

from logitkit import StepContext
from logitkit_builtins.watermark import Watermarking, WatermarkingConfig


def per_step_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{'scheme':9} {'batch':>5} {'vocab':>7} {'cold ms':>9} {'cached ms':>10} {'transformers ms':>16} equal"
    )
    for scheme in ("lefthash", "selfhash"):
        for batch, vocab in ((1, 256), (16, 32_000), (16, 150_000)):
            ids = torch.randint(0, vocab, (batch, 8), device=args.device)
            scores = torch.randn(batch, vocab, device=args.device)
            ours = Watermarking(WatermarkingConfig(seeding_scheme=scheme))
            theirs = WatermarkLogitsProcessor(vocab, args.device, seeding_scheme=scheme)
            ctx = StepContext(ids, 8, 0)
            repeats = 3 if vocab > 1000 else 20
            config = ours.config
            cold_ms = per_step_ms(lambda: Watermarking(config).apply(scores, ctx), repeats)  # noqa: B023
            ours_ms = per_step_ms(lambda: ours.apply(scores, ctx), repeats)  # noqa: B023
            theirs_ms = per_step_ms(lambda: theirs(ids, scores), repeats)  # noqa: B023
            equal = torch.equal(ours.apply(scores, ctx), theirs(ids, scores))
            print(
                f"{scheme:9} {batch:>5} {vocab:>7} {cold_ms:>9.1f} {ours_ms:>10.1f} {theirs_ms:>16.1f} {equal}"
            )


if __name__ == "__main__":
    main()
