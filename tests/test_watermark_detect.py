"""Done-when for watermarking: 200 sampled tokens are detected by ``logitkit detect`` with the watermark on, not with it off."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import WhitespaceSplit
from transformers import GPT2Config, GPT2LMHeadModel

from logitkit import Pipeline
from logitkit.cli import main

VOCAB = 256
NEW_TOKENS = 200
SCHEMES = {
    "lefthash": {"scheme": "greenlist"},
    "selfhash": {"scheme": "greenlist", "seeding_scheme": "selfhash", "context_width": 2},
    "synthid": {"scheme": "synthid", "keys": [11, 22, 33, 44], "ngram_len": 4},
}


@pytest.fixture(scope="module")
def model() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=2,
        n_head=2,
        n_positions=256,
        bos_token_id=0,
        eos_token_id=1,
    )
    model = GPT2LMHeadModel(config).eval()
    model.generation_config.eos_token_id = None  # sample exactly NEW_TOKENS tokens
    model.generation_config.pad_token_id = 0
    return model


@pytest.fixture(scope="module")
def tokenizer_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A word-level tokenizer whose decode/encode round trip is exact: one word per token id."""
    vocab = {"[UNK]": 0, **{f"w{i}": i for i in range(1, VOCAB)}}
    tokenizer = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = WhitespaceSplit()
    path = tmp_path_factory.mktemp("tok") / "tokenizer.json"
    tokenizer.save(str(path))
    return path


@pytest.fixture(scope="module")
def samples(model: GPT2LMHeadModel) -> dict[tuple[str, bool], list[int]]:
    """200 sampled tokens per (scheme, watermark on), the same prompt and seed for on and off."""
    threads = torch.get_num_threads()
    torch.set_num_threads(
        1
    )  # a tiny model's many small ops only lose to thread hand-offs on a shared CPU
    try:
        return {
            (scheme, on): _sample(model, SCHEMES[scheme] if on else None, seed=11)
            for scheme in SCHEMES
            for on in (True, False)
        }
    finally:
        torch.set_num_threads(threads)


def _sample(model: GPT2LMHeadModel, watermark: dict[str, object] | None, seed: int) -> list[int]:
    prompt = torch.randint(1, VOCAB, (1, 5), generator=torch.Generator().manual_seed(seed))
    processors = None
    if watermark is not None:
        pipe = Pipeline.from_config(
            {"tokens": {"vocab_size": VOCAB}, "processors": [{"name": "watermarking", **watermark}]}
        )
        # transformers samples from the watermarked scores (do_sample=True), not logitkit's selector.
        processors = pipe.as_hf(include_selector=False)
    torch.manual_seed(seed)
    out = model.generate(
        prompt, logits_processor=processors, do_sample=True, top_k=0, max_new_tokens=NEW_TOKENS
    )
    generated = out[0, prompt.shape[1] :].tolist()
    assert len(generated) == NEW_TOKENS
    assert (
        len(set(generated)) > 60
    )  # really sampled: a near-flat model gives varied text, not a greedy loop
    return generated


def _config_file(tmp_path: Path, watermark: dict[str, object]) -> str:
    path = tmp_path / "watermark.yaml"
    config = {
        "tokens": {"vocab_size": VOCAB},
        "processors": [{"name": "watermarking", **watermark}],
    }
    path.write_text(json.dumps(config))  # JSON is valid YAML
    return str(path)


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_sampled_text_is_detected_only_with_the_watermark_on(
    scheme: str,
    samples: dict[tuple[str, bool], list[int]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = _config_file(tmp_path, SCHEMES[scheme])
    verdicts = {}
    for on in (True, False):
        ids = samples[scheme, on]
        code = main(["detect", config, "--ids", ",".join(map(str, ids)), "--json"])
        (report,) = json.loads(capsys.readouterr().out)
        verdicts[on] = (code, report["watermarked"], report["z_score"])
    assert verdicts[True][:2] == (0, True), verdicts
    assert verdicts[False][:2] == (1, False), verdicts
    assert verdicts[True][2] > verdicts[False][2] + 4


def test_text_is_scored_through_the_tokenizer(
    samples: dict[tuple[str, bool], list[int]],
    tokenizer_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    config = _config_file(tmp_path, SCHEMES["lefthash"])
    marked = tokenizer.decode(samples["lefthash", True])
    plain = tokenizer.decode(samples["lefthash", False])
    assert tokenizer.encode(marked).ids == samples["lefthash", True]  # the round trip is exact
    assert main(["detect", config, "--text", marked, "--tokenizer", str(tokenizer_path)]) == 0
    assert "watermarked" in capsys.readouterr().out
    text_file = tmp_path / "plain.txt"
    text_file.write_text(plain)
    assert (
        main(
            [
                "detect",
                config,
                "--text-file",
                str(text_file),
                "--tokenizer",
                str(tokenizer_path.parent),
            ]
        )
        == 1
    )
    assert "not watermarked" in capsys.readouterr().out


def test_ids_file_scores_each_line(
    model: GPT2LMHeadModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config_file(tmp_path, SCHEMES["synthid"])
    marked = _sample(model, SCHEMES["synthid"], seed=5)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text(
        " ".join(map(str, marked)) + "\n\n" + ",".join(map(str, marked[:150])) + "\n"
    )
    assert main(["detect", config, "--ids-file", str(ids_file), "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    assert [r["sequence"] for r in reports] == [0, 1]
    assert all(r["watermarked"] for r in reports)


@pytest.mark.parametrize(
    ("config", "args", "message"),
    [
        ({"processors": ["temperature"]}, ["--ids", "1,2,3"], "no processor with a detector"),
        ({"processors": ["watermarking"]}, ["--ids", "1,2,3,4"], "vocabulary size"),
        (
            {"processors": ["watermarking"], "tokens": {"vocab_size": 9}},
            ["--ids", "1,x"],
            "--ids: line 1: token ids must be integers",
        ),
        (
            {"processors": ["watermarking"], "tokens": {"vocab_size": 9}},
            ["--text", "hello"],
            "needs --tokenizer",
        ),
        (
            {"processors": ["watermarking"], "tokens": {"vocab_size": 9}},
            ["--ids", "4"],
            "need more than context_width=1 tokens",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(
    config: dict[str, object],
    args: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    assert main(["detect", str(path), *args]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_invalid_watermark_config_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"processors": [{"name": "watermarking", "greenlist_ratio": 2}]}))
    assert main(["detect", str(path), "--ids", "1,2,3"]) == 2
    assert "processors[0].greenlist_ratio: must be > 0 and < 1 (got 2)" in capsys.readouterr().err


def test_vocab_size_option_overrides_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"processors": ["watermarking"]}))
    assert main(["detect", str(path), "--ids", "1,2,3,4,5,6", "--vocab-size", "50", "--json"]) in (
        0,
        1,
    )
    assert json.loads(capsys.readouterr().out)[0]["scored"] == 5
