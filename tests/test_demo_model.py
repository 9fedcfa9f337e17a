"""The embedded demo model: shipped in the package, loads offline, writes Python-looking code."""

from __future__ import annotations

import json

import pytest
import torch

from logitkit.demo import MODEL_DIR, load_codec, load_model
from logitkit.demo.corpus import find_corpus, is_held_out
from logitkit.demo.train import main as train_main

WEIGHTS_BUDGET_BYTES = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def model():
    return load_model()


@pytest.fixture(scope="module")
def codec():
    return load_codec()


def greedy(model, codec, prompt: str, new_tokens: int) -> str:
    """transformers' own greedy search, so this checks the model rather than logitkit's loop."""
    ids = torch.tensor([codec.encode(prompt)])
    out = model.generate(ids, max_new_tokens=new_tokens, do_sample=False, pad_token_id=codec.eos_ids[0])
    return codec.decode(out[0].tolist())


def test_ships_config_weights_and_tokenizer_within_budget():
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training.json"):
        assert (MODEL_DIR / name).is_file(), name
    assert (MODEL_DIR / "model.safetensors").stat().st_size < WEIGHTS_BUDGET_BYTES


def test_training_record_has_held_out_loss():
    record = json.loads((MODEL_DIR / "training.json").read_text())
    assert record["command"] == "python -m logitkit.demo.train"
    assert (
        0 < record["metrics"]["held_out_loss"] < 8.3
    )  # below a uniform guess over 4096 tokens (ln 4096)


def test_loads_offline_with_auto_model(monkeypatch, model):
    from transformers import AutoModelForCausalLM

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = AutoModelForCausalLM.from_pretrained(MODEL_DIR)
    assert type(again).__name__ == type(model).__name__
    assert torch.equal(again.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_tokenizer_is_byte_level_bpe_of_4k_to_8k(codec):
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(str(MODEL_DIR / "tokenizer.json"))
    assert 4000 <= raw.get_vocab_size() <= 8192
    assert json.loads(raw.to_str())["model"]["type"] == "BPE"
    text = "naïve ✓ 数据\n\tdef f(x):  return x  # émoji 🙂"
    assert codec.decode(codec.encode(text)) == text  # byte-level: any text round-trips


def test_encoding_starts_with_end_of_text_like_each_training_file(codec):
    ids = codec.encode("import os")
    assert ids[0] in codec.eos_ids
    assert codec.decode(ids) == "import os"


def test_completes_python_at_low_temperature(model, codec):
    # Prompts end on a full token (":" or a closed docstring), as a file would, not mid-indentation.
    method = greedy(model, codec, "class Point:\n    def __init__(self, x, y):", 16)
    docstring = 'def is_empty(items):\n    """Return True if items is empty."""'
    function = greedy(model, codec, docstring, 24)
    method_body = method.split("x, y):", 1)[1]
    function_body = function[len(docstring) :]
    assert method_body.startswith("\n        ")  # a method body, indented one level deeper
    assert "self." in method_body
    assert function_body.startswith("\n    ")
    assert "return" in function_body


def test_held_out_split_is_fixed_and_disjoint():
    corpus = find_corpus()
    assert corpus.held_out and corpus.train
    assert not set(corpus.train) & set(corpus.held_out)
    assert all(is_held_out(p.relative_to(corpus.root).as_posix()) for p in corpus.held_out)
    assert find_corpus() == corpus


def test_training_script_writes_a_loadable_model_folder(tmp_path):
    out = tmp_path / "model"
    args = ["--out", str(out), "--max-files", "8", "--vocab-size", "400", "--context", "16", "--hidden", "16",
            "--layers", "1", "--heads", "2", "--batch", "2", "--steps", "3", "--warmup", "1", "--eval-windows", "4",
            "--save-every", "0", "--log-every", "1"]  # fmt: skip
    assert train_main(args) == 0
    small = load_model(out)
    small_codec = load_codec(out)
    assert small.config.vocab_size == 400
    record = json.loads((out / "training.json").read_text())
    assert record["metrics"]["steps_done"] == 3
    ids = torch.tensor([small_codec.encode("def f():")])
    assert small(input_ids=ids).logits.shape == (1, ids.shape[1], 400)
