"""Time the history processors against transformers' own classes at batch 8, vocab 151,936.

    python examples/bench_history.py [--threads N] [--device cpu|cuda]

Prints the best of 30 calls per processor and history length (512 and 2048).
Both sides get the same inputs; logitkit's processors are built from the registry.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import generation as hf

from logitkit import StepContext, TokenSettings, registry

BATCH, VOCAB = 8, 151_936


def best_ms(fn: Callable[[], Any], device: str, runs: int = 30) -> float:
    fn()
    times = []
    for _ in range(runs):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def build(name: str, fields: dict[str, Any], tokens: TokenSettings | None = None) -> Any:
    cls = registry().processors[name].cls
    return cls(cls.Config.model_validate(fields), tokens or TokenSettings())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = random.Random(0)
    words = list({tuple(rng.randrange(3000) for _ in range(rng.randint(1, 3))) for _ in range(64)})
    for length in (512, 2048):
        gen = torch.Generator().manual_seed(length)
        ids = torch.randint(0, 3000, (BATCH, length), generator=gen).to(args.device)
        encoder = torch.randint(0, 3000, (BATCH, length), generator=gen).to(args.device)
        scores = torch.randn(BATCH, VOCAB, generator=gen).to(args.device)
        tokens = TokenSettings(eos=[2])
        ctx = StepContext(input_ids=ids, prompt_lengths=length // 2, steps=length // 2, encoder_input_ids=encoder, tokens=tokens)
        cases = {
            "repetition_penalty": (build("repetition_penalty", {"penalty": 1.2}), hf.RepetitionPenaltyLogitsProcessor(1.2)),
            "encoder_repetition_penalty": (
                build("encoder_repetition_penalty", {"penalty": 1.2}),
                hf.EncoderRepetitionPenaltyLogitsProcessor(1.2, encoder),
            ),
            "no_repeat_ngram_size": (build("no_repeat_ngram_size", {"ngram_size": 3}), hf.NoRepeatNGramLogitsProcessor(3)),
            "encoder_no_repeat_ngram_size": (
                build("encoder_no_repeat_ngram_size", {"ngram_size": 3}),
                hf.EncoderNoRepeatNGramLogitsProcessor(3, encoder),
            ),
            "bad_words_ids (64)": (
                build("bad_words_ids", {"bad_words_ids": [list(w) for w in words]}, tokens),
                hf.NoBadWordsLogitsProcessor([list(w) for w in words], [2]),
            ),
            "sequence_bias (64)": (
                build("sequence_bias", {"sequence_bias": [[list(w), 1.0] for w in words]}),
                hf.SequenceBiasLogitsProcessor([[list(w), 1.0] for w in words]),
            ),
        }
        for name, (ours, theirs) in cases.items():
            mine = best_ms(lambda ours=ours, s=scores, c=ctx: ours.apply(s, c), args.device)
            reference = best_ms(lambda theirs=theirs, i=ids, s=scores: theirs(i, s), args.device)
            print(f"history {length:5d}  {name:30s} logitkit {mine:7.2f} ms   transformers {reference:7.2f} ms")


if __name__ == "__main__":
    main()
