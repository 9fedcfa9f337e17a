"""watermarking: differential tests against transformers' processors and detector, and config validation."""

from __future__ import annotations

import pytest
import torch
from transformers.generation.logits_process import (
    SynthIDTextWatermarkLogitsProcessor,
    WatermarkLogitsProcessor,
)
from transformers.generation.watermarking import WatermarkDetector

from logitkit import ConfigError, Pipeline, StepContext, TokenSettings
from logitkit.config import resolve
from logitkit_builtins._randperm import randperm_head
from logitkit_builtins.watermark import (
    Watermarking,
    WatermarkingConfig,
    detect,
    detect_greenlist,
    detect_synthid,
    synthid_g_values,
)

KEYS = [654, 400, 836, 123, 340, 443, 597, 160, 57]


# -- the vectorized randperm -------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 17, 50, 1000, 4099])
def test_randperm_head_matches_torch_randperm_for_every_seed(n: int) -> None:
    seeds = torch.tensor([0, 1, 15485863, 2**40 + 7, 2**63 - 6, 123456789 * 97, 2**32 - 1])
    for k in sorted({0, 1, n // 4, n // 2, n - 1, n}):
        heads = randperm_head(seeds, n, k)
        for row, seed in enumerate(seeds.tolist()):
            expected = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:k]
            assert torch.equal(heads[row], expected), (n, k, seed)


# -- the green-list processor ------------------------------------------------------------------


def _green_case(
    scheme: str, width: int, vocab: int, batch: int, dtype: torch.dtype, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, 6), generator=gen)
    if batch > 1:
        ids[1] = ids[0]  # identical histories must get identical green lists
    scores = torch.randn(batch, vocab, generator=gen).to(dtype)
    settings = {
        "greenlist_ratio": 0.3,
        "bias": 1.5,
        "seeding_scheme": scheme,
        "context_width": width,
    }
    theirs = WatermarkLogitsProcessor(vocab, "cpu", hashing_key=15485863, **settings)(ids, scores)
    ours = Watermarking(WatermarkingConfig(**settings)).apply(scores, StepContext(ids, 3, 3))
    assert ours.dtype == theirs.dtype
    assert torch.equal(ours, theirs)
    assert bool((ours != scores).any())


@pytest.mark.parametrize("scheme", ["lefthash", "selfhash"])
@pytest.mark.parametrize("width", [1, 3])
@pytest.mark.parametrize("vocab", [50, 1000, 32000])
def test_greenlist_logits_equal_transformers(scheme: str, width: int, vocab: int) -> None:
    _green_case(
        scheme,
        width,
        vocab,
        batch=5 if vocab <= 1000 else 2,
        dtype=torch.float32,
        seed=vocab + width,
    )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_greenlist_logits_equal_transformers_in_half_precision(dtype: torch.dtype) -> None:
    _green_case("lefthash", 1, 500, batch=3, dtype=dtype, seed=7)
    _green_case("selfhash", 2, 500, batch=3, dtype=dtype, seed=8)


def test_greenlist_at_a_large_vocabulary_and_batch_16() -> None:
    _green_case("lefthash", 1, 150_000, batch=16, dtype=torch.float32, seed=3)


def test_greenlist_skips_a_step_with_fewer_tokens_than_the_context_width() -> None:
    scores = torch.randn(2, 60)
    ids = torch.randint(0, 60, (2, 2))
    out = Watermarking(WatermarkingConfig(context_width=4)).apply(scores, StepContext(ids, 2, 0))
    assert torch.equal(out, scores)


def test_declared_vocab_size_bounds_the_green_list() -> None:
    scores = torch.randn(2, 64)
    ids = torch.randint(0, 50, (2, 3))
    tokens = TokenSettings(vocab_size=50)
    out = Watermarking(WatermarkingConfig(), tokens).apply(scores, StepContext(ids, 3, 0))
    theirs = WatermarkLogitsProcessor(50, "cpu")(ids, scores)
    assert torch.equal(out, theirs)
    assert torch.equal(out[:, 50:], scores[:, 50:])
    with pytest.raises(ValueError, match="vocab_size is 80"):
        Watermarking(WatermarkingConfig(), TokenSettings(vocab_size=80)).apply(
            scores, StepContext(ids, 3, 0)
        )


# -- SynthID -----------------------------------------------------------------------------------


@pytest.mark.parametrize("ngram_len", [2, 5])
@pytest.mark.parametrize("skip_first", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_synthid_logits_equal_transformers_over_a_generation(
    ngram_len: int, skip_first: bool, dtype: torch.dtype
) -> None:
    vocab, batch, prompt = 300, 3, 4
    gen = torch.Generator().manual_seed(ngram_len * 10 + skip_first)
    theirs = SynthIDTextWatermarkLogitsProcessor(
        ngram_len, KEYS, 2**16, 0, 16, "cpu", skip_first_ngram_calls=skip_first
    )
    ours = Watermarking(
        WatermarkingConfig(
            scheme="synthid",
            keys=KEYS,
            ngram_len=ngram_len,
            context_history_size=16,
            skip_first_ngram_calls=skip_first,
        )
    )
    ids = torch.randint(0, vocab, (batch, prompt), generator=gen)
    repeats_seen = False
    for step in range(30):
        scores = torch.randn(batch, vocab, generator=gen).to(dtype)
        expected = theirs(ids, scores)
        got = ours.apply(scores, StepContext(ids, prompt, step))
        assert torch.equal(got, expected), step
        repeats_seen |= bool((got == scores).all(dim=-1).any()) and step >= ngram_len
        # Few distinct tokens, so contexts repeat and the repeated-context rule is exercised.
        ids = torch.cat([ids, torch.randint(0, 4, (batch, 1), generator=gen)], dim=1)
    assert repeats_seen


# -- detectors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["lefthash", "selfhash"])
@pytest.mark.parametrize("ignore_repeats", [False, True])
def test_greenlist_detector_equals_transformers(scheme: str, ignore_repeats: bool) -> None:
    vocab, bos = 120, 0
    config = {
        "greenlist_ratio": 0.25,
        "bias": 2.0,
        "hashing_key": 15485863,
        "seeding_scheme": scheme,
        "context_width": 2,
    }
    gen = torch.Generator().manual_seed(5)
    ids = torch.randint(1, 12, (4, 60), generator=gen)  # a small alphabet gives repeated n-grams
    ids[:, 0] = bos
    model_config = type(
        "Config", (), {"bos_token_id": bos, "is_encoder_decoder": False, "vocab_size": vocab}
    )()
    theirs = WatermarkDetector(model_config, "cpu", config, ignore_repeated_ngrams=ignore_repeats)(
        ids, z_threshold=0.5, return_dict=True
    )
    ours = detect_greenlist(ids, vocab_size=vocab, bos_token_id=bos, ignore_repeated_ngrams=ignore_repeats, z_threshold=0.5,
                            **{k: v for k, v in config.items() if k != "bias"})  # fmt: skip
    assert [d.scored for d in ours] == theirs.num_tokens_scored.tolist()
    assert [d.score for d in ours] == pytest.approx(theirs.green_fraction.tolist(), rel=1e-12)
    assert [d.z_score for d in ours] == pytest.approx(theirs.z_score.tolist(), rel=1e-9)
    assert [d.watermarked for d in ours] == theirs.prediction.tolist()
    assert [d.p_value for d in ours] == pytest.approx(theirs.p_value.tolist(), rel=1e-6)


def test_synthid_detector_inputs_equal_transformers_g_values_and_masks() -> None:
    eos, ngram_len = 3, 4
    theirs = SynthIDTextWatermarkLogitsProcessor(ngram_len, KEYS, 2**16, 0, 8, "cpu")
    gen = torch.Generator().manual_seed(9)
    ids = torch.randint(4, 10, (3, 50), generator=gen)
    ids[1, 30] = eos
    g_values, mask = synthid_g_values(
        ids, keys=KEYS, ngram_len=ngram_len, context_history_size=8, eos_token_ids=[eos]
    )
    assert torch.equal(g_values, theirs.compute_g_values(ids))
    expected_mask = (
        theirs.compute_context_repetition_mask(ids)
        & theirs.compute_eos_token_mask(ids, eos)[:, ngram_len - 1 :].bool()
    )
    assert torch.equal(mask, expected_mask)
    assert not bool(mask.all())


def test_detector_z_scores_are_standard_normal_on_unwatermarked_text() -> None:
    ids = torch.randint(0, 256, (200, 150), generator=torch.Generator().manual_seed(0))
    for detections in (
        detect_greenlist(ids, vocab_size=256),
        detect_greenlist(ids, vocab_size=256, seeding_scheme="selfhash", context_width=2),
        detect_synthid(ids, keys=[11, 22, 33, 44], ngram_len=4),
    ):
        z = torch.tensor([d.z_score for d in detections], dtype=torch.float64)
        assert abs(float(z.mean())) < 0.25 and 0.8 < float(z.std()) < 1.2
        assert not any(d.watermarked for d in detections)


def test_detect_dispatches_on_the_scheme_and_needs_a_vocab_size_for_greenlist() -> None:
    ids = torch.randint(0, 50, (1, 30))
    with pytest.raises(ValueError, match="vocabulary size"):
        detect({"scheme": "greenlist"}, ids)
    (green,) = detect({"scheme": "greenlist"}, ids, tokens=TokenSettings(vocab_size=50))
    (synth,) = detect({"keys": [1, 2]}, ids)
    assert (green.scheme, synth.scheme) == ("greenlist", "synthid")
    with pytest.raises(ValueError, match="at least ngram_len=5"):
        detect_synthid([1, 2, 3], keys=[1])


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"greenlist_ratio": 1.0}, "processors[0].greenlist_ratio: must be > 0 and < 1 (got 1.0)"),
        ({"bias": -1}, "processors[0].bias: must be >= 0 (got -1)"),
        ({"context_width": 0}, "processors[0].context_width: must be >= 1 (got 0)"),
        ({"hashing_key": 2**32}, "processors[0].hashing_key: must be >= 0 and <= 4294967295"),
        ({"seeding_scheme": "middlehash"}, "processors[0].seeding_scheme"),
        (
            {"scheme": "synthid", "keys": [1], "sampling_table_size": 2**25},
            "sampling_table_size: must be >= 2 and <= 16777216",
        ),
        (
            {"scheme": "synthid", "keys": [1], "ngram_len": 1},
            "processors[0].ngram_len: must be >= 2 (got 1)",
        ),
        ({"scheme": "synthid", "keys": [-4]}, "processors[0].keys[0]: must be >= 0"),
        ({"scheme": "synthid"}, "scheme 'synthid' needs 'keys'"),
        (
            {"scheme": "synthid", "keys": [1], "bias": 2.0},
            "'bias' is a greenlist setting; this entry has scheme 'synthid'",
        ),
        ({"ngram_len": 3}, "'ngram_len' is a synthid setting; this entry has scheme 'greenlist'"),
    ],
)
def test_out_of_range_and_inconsistent_settings_are_config_errors(
    entry: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        resolve({"processors": [{"name": "watermarking", **entry}]})
    assert message in str(info.value)


def test_a_synthid_dict_from_transformers_reads_as_synthid() -> None:
    pipe = Pipeline.from_config([{"name": "watermarking", "keys": KEYS, "ngram_len": 5}])
    assert pipe.processors[0].config.scheme == "synthid"
    assert Pipeline.from_config(["watermarking"]).processors[0].config.scheme == "greenlist"
    with pytest.raises(ConfigError, match="needs 'keys'"):
        resolve([{"watermarking": "synthid"}])


@pytest.mark.parametrize("scheme", ["lefthash", "selfhash"])
@pytest.mark.parametrize("max_bytes", [64 << 20, 300])
def test_cached_green_lists_give_the_same_logits_step_after_step(scheme: str, max_bytes: int) -> None:
    vocab, batch = 120, 4
    gen = torch.Generator().manual_seed(21)
    settings = {"seeding_scheme": scheme, "context_width": 1}
    theirs = WatermarkLogitsProcessor(vocab, "cpu", **settings)
    ours = Watermarking(WatermarkingConfig(**settings))
    ours._green_lists.max_bytes = max_bytes  # 300 bytes: at most two lists, so eviction happens
    ids = torch.randint(0, 6, (batch, 3), generator=gen)
    for step in range(12):
        scores = torch.randn(batch, vocab, generator=gen)
        assert torch.equal(ours.apply(scores, StepContext(ids, 3, step)), theirs(ids, scores)), step
        ids = torch.cat([ids, torch.randint(0, 6, (batch, 1), generator=gen)], dim=1)
    assert ours._green_lists._table[1].numel() > 0
