"""transformers' own SynthID tests that replay prefixes, run against logitkit's SynthID.

``test_synthidtext_watermark_processor_bias_test`` and
``test_synthidtext_watermark_processor_distributional_convergence`` (in
transformers' tests/generation/test_logits_process.py) call the processor on
a full context, then on shorter prefixes of it, then on the full context
again, and score the result with transformers' own g-values. transformers'
processor keeps its state across those calls; a logitkit pipeline treats
each call on its own, as that prefix fed from an empty context (the prompt
length pinned to 0), which is what the replayed calls build up.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from transformers.generation import SynthIDTextWatermarkLogitsProcessor

from logitkit import Pipeline


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Small tensors in a long loop: intra-op threads cost more than they give.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def synthid_pipeline(keys: list[int], ngram_len: int, history: int) -> Pipeline:
    config = {
        "name": "watermarking",
        "scheme": "synthid",
        "keys": [int(k) for k in keys],
        "ngram_len": ngram_len,
        "sampling_table_size": 2**16,
        "sampling_table_seed": 0,
        "context_history_size": history,
    }
    return Pipeline.from_config([config], prompt_length=0)


@pytest.mark.parametrize(
    ("vocab_size", "ngram_len", "num_layers", "atol"),
    [(2, 10, 1, 0.01), (100, 5, 1, 0.01), (100, 10, 2, 0.02)],
)
def test_bias_matches_the_theoretical_mean_g_value(vocab_size: int, ngram_len: int, num_layers: int, atol: float) -> None:
    batch_size = 20000
    generator = torch.Generator().manual_seed(0)
    np.random.seed(0)
    keys = [np.random.randint(0, 10**9) for _ in range(num_layers)]
    context = torch.randint(0, 10**9, (batch_size, ngram_len - 1), dtype=torch.int64, generator=generator)
    ours = synthid_pipeline(keys, ngram_len, 1024)
    theirs = SynthIDTextWatermarkLogitsProcessor(ngram_len, keys, 2**16, 0, 1024, "cpu")

    scores = torch.ones((batch_size, vocab_size), dtype=torch.float64)
    ours(context, scores)
    for idx in range(1, ngram_len - 1):
        ours(context[:, :idx], scores)
    updated_scores = ours(context, scores)

    probs = torch.nn.functional.softmax(updated_scores, dim=1)
    next_tokens = torch.multinomial(probs, num_samples=1, generator=torch.Generator().manual_seed(0))
    g_values = theirs.compute_g_values(torch.concat((context, next_tokens), dim=1))
    mean_g_values = g_values.mean(dtype=torch.float64, dim=(0, 1))
    expected = theirs.expected_mean_g_value(vocab_size=vocab_size)
    assert torch.all(torch.isclose(mean_g_values, torch.tensor(expected, dtype=torch.float64), atol=atol, rtol=0)), (
        mean_g_values,
        expected,
    )


@pytest.mark.parametrize(("vocab_size", "logits_type"), [(2, "uniform"), (10, "uniform"), (2, "random"), (10, "random")])
def test_watermarked_distribution_converges_to_the_unwatermarked_one(vocab_size: int, logits_type: str) -> None:
    batch_size, num_keys = 1500, 1000
    updated_softmaxes: np.ndarray | int = 0
    np.random.seed(0)
    torch.manual_seed(0)
    if logits_type == "uniform":
        fixed_logits = torch.ones((batch_size, vocab_size))
    else:
        fixed_logits = torch.rand((1, vocab_size)).repeat(batch_size, 1)
    for _ in range(num_keys):
        ngram_len = 5
        keys = np.random.randint(0, 10**9, size=(1,), dtype=np.int64)
        ours = synthid_pipeline(keys.tolist(), ngram_len, 1024)
        ngrams = torch.randint(0, vocab_size, (batch_size, ngram_len))
        for idx in range(1, ngram_len - 1):
            ours(ngrams[:, :idx], fixed_logits)
        updated_scores = ours(ngrams, fixed_logits)
        updated_softmaxes = updated_softmaxes + torch.nn.functional.softmax(updated_scores, dim=1).numpy()

    mean = np.mean(updated_softmaxes, axis=0) / num_keys
    assert torch.all(
        torch.isclose(torch.tensor(mean), torch.softmax(fixed_logits[0], dim=-1), atol=1e-3, rtol=0)
    )
