"""Issue 15, items 7, 12, 13 and 15: hostile inputs give one error line, exit 2, and no traceback.

Also the YAML pre-scan that stops at the value budget, and generation buffers that
grow as generation proceeds instead of being allocated for max_length up front.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from logitkit import loading
from logitkit.cli import main
from logitkit.errors import ConfigError
from logitkit.loading import MAX_CONFIG_NODES, _count_nodes, parse_text, prescan_yaml


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """``(exit code, stderr)`` of ``logitkit ARGV``, argparse's own exits included."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


@pytest.fixture
def watermark_config(tmp_path: Path) -> str:
    path = tmp_path / "wm.json"
    path.write_text(json.dumps({"processors": ["watermarking"], "tokens": {"vocab_size": 50}}))
    return str(path)


# -- item 15: detect's numbers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--vocab-size", "0"], "argument --vocab-size: must be >= 1 (got 0)"),
        (["--vocab-size", "-5"], "argument --vocab-size: must be >= 1 (got -5)"),
        (["--z-threshold", "nan"], "argument --z-threshold: must be a finite number (got 'nan')"),
        (["--z-threshold", "inf"], "argument --z-threshold: must be a finite number (got 'inf')"),
    ],
)
def test_detect_refuses_a_zero_vocabulary_and_a_nan_threshold(
    watermark_config: str, args: list[str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run_cli(capsys, "detect", watermark_config, "--ids", "1,2,3,4", *args)
    assert code == 2
    assert reason in err


# -- item 12: detect's input files ---------------------------------------------------------


@pytest.mark.parametrize("option", ["--ids-file", "--text-file"])
def test_detect_refuses_a_device_and_a_fifo_without_reading(
    watermark_config: str, option: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    zero = tmp_path / "zero.txt"
    zero.symlink_to("/dev/zero")
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)  # opening it for reading would block forever: it must not be opened
    extra = ["--tokenizer", str(tmp_path)] if option == "--text-file" else []
    for path in (zero, fifo):
        code, err = run_cli(capsys, "detect", watermark_config, option, str(path), *extra)
        assert code == 2
        assert f"{option}: {path}: not a regular file" in err


def test_detect_caps_what_it_reads(
    watermark_config: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from logitkit.commands import detect

    monkeypatch.setattr(detect, "MAX_INPUT_BYTES", 100)
    ids = tmp_path / "ids.txt"
    ids.write_text("1 2 3 4\n" * 50)
    code, err = run_cli(capsys, "detect", watermark_config, "--ids-file", str(ids))
    assert code == 2
    assert f"--ids-file: {ids}: file is 400 bytes; the limit is 100" in err


# -- item 15: the config size variable, stdin, models, allocation --------------------------


@pytest.mark.parametrize("value", ["garbage", "-1", "0", "1e6", "12 MB"])
def test_garbage_in_the_size_variable_is_an_error_line(
    value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("processors: [top_k]\n")
    monkeypatch.setenv("LOGITKIT_MAX_CONFIG_BYTES", value)
    code, err = run_cli(capsys, "validate", str(path))
    assert code == 2
    assert f"{path}: LOGITKIT_MAX_CONFIG_BYTES must be a positive whole number of bytes (got {value!r})" in err


def test_a_valid_size_variable_still_applies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("processors: [top_k, top_p]\n")
    monkeypatch.setenv("LOGITKIT_MAX_CONFIG_BYTES", "10")
    code, err = run_cli(capsys, "validate", str(path))
    assert code == 2
    assert "the limit is 10" in err


@pytest.mark.parametrize("depth", [100_000, 3_000])
def test_convert_stdin_with_deep_nesting_is_an_error_line(
    depth: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("[" * depth + "]" * depth))
    code, err = run_cli(capsys, "convert", "-", "--from", "openai", "--to", "logitkit")
    assert code == 2
    assert "<stdin>: " in err and "nested too deeply" in err


def test_convert_param_with_deep_nesting_is_an_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run_cli(capsys, "convert", "--from", "openai", "--to", "logitkit", "-p", "x=" + "[" * 100_000)
    assert code == 2
    assert "--param x: value is nested too deeply" in err


def _tiny_llama_folder(folder: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    from logitkit.demo import MODEL_DIR

    config = LlamaConfig(vocab_size=64, hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(folder)
    (folder / "tokenizer.json").write_bytes((Path(MODEL_DIR) / "tokenizer.json").read_bytes())


def test_generate_with_a_bad_config_json_is_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _tiny_llama_folder(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama", "vocab_size": ')
    code, err = run_cli(capsys, "generate", "x", "--model", str(tmp_path), "-n", "2")
    assert code == 2
    last = err.strip().splitlines()[-1]  # before it: transformers' own progress bars
    assert last.startswith(f"error: --model {tmp_path}: cannot load the model: "), err


def test_generate_with_a_refused_pickle_model_is_an_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _tiny_llama_folder(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    # A pickle holding an object torch.load(weights_only=True) refuses to build.
    torch.save({"model.embed_tokens.weight": Fraction(1, 2)}, tmp_path / "pytorch_model.bin")
    code, err = run_cli(capsys, "generate", "x", "--model", str(tmp_path), "-n", "2")
    assert code == 2
    last = err.strip().splitlines()[-1]  # before it: transformers' own progress bars
    assert last.startswith(f"error: --model {tmp_path}: cannot load the model: "), err


@pytest.mark.parametrize(
    "failure",
    [
        MemoryError(),
        RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 8000000000000 bytes."),
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 7.45 TiB"),
    ],
)
def test_an_allocation_failure_is_an_error_line(
    failure: BaseException, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import logitkit.generation

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise failure

    monkeypatch.setattr(logitkit.generation, "generate", fail)
    code, err = run_cli(capsys, "generate", "x", "--preset", "flat", "-n", "1000000")
    assert code == 2
    assert "error: out of memory generating 1000000 new tokens with num_beams 1" in err
    assert "generation.max_new_tokens" in err


def test_other_runtime_errors_are_not_reported_as_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    import logitkit.generation

    def fail(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(logitkit.generation, "generate", fail)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        main(["generate", "x", "--preset", "flat", "-n", "2"])


# -- item 13: the YAML pre-scan ------------------------------------------------------------


def test_a_huge_yaml_list_is_refused_without_building_the_document(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "processors:\n" + "- 1\n" * 247_000  # about 990 KB, over the 100,000-value budget
    assert len(text) < 1_000_000

    def never(text: str) -> Any:
        raise AssertionError("the document was built before the budget was checked")

    monkeypatch.setattr(loading, "_safe_load", never)
    with pytest.raises(ConfigError, match=f"more than {MAX_CONFIG_NODES} values"):
        parse_text(text, "yaml", "big.yaml")


def test_an_alias_bomb_is_refused_by_the_pre_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    monkeypatch.setattr(loading, "_safe_load", lambda text: pytest.fail("document built"))
    with pytest.raises(ConfigError, match="alias bomb"):
        parse_text("\n".join(lines), "yaml", "bomb.yaml")


@pytest.mark.parametrize("text", ["- &a [*a]", "a: &x {b: [1, *x]}", "- &a [1, 2]\n- &b [*a, *b]"])
def test_a_recursive_alias_is_an_error_line(text: str) -> None:
    """Found by the fuzz harness: safe_load builds a list that contains itself, and counting it recursed forever."""
    with pytest.raises(ConfigError, match="recursive alias"):
        parse_text(text, "yaml", "loop.yaml")


_LEAVES = st.one_of(st.integers(-5, 5), st.text("ab", max_size=3), st.booleans(), st.none())
_DOCS = st.recursive(
    _LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text("xyz", min_size=1, max_size=3), inner, max_size=3),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(doc=_DOCS, share=st.booleans())
def test_the_pre_scan_counts_what_the_tree_walk_counts(doc: Any, share: bool) -> None:
    """The event count, aliases expanded, equals the count over the built tree, so both apply one budget."""
    data = {"one": doc, "two": doc} if share else doc  # safe_dump writes a shared object as an anchor and an alias
    text = yaml.safe_dump(data)
    budget = [10**9]
    _count_nodes(yaml.safe_load(text), budget, "x")
    assert prescan_yaml(text, "x") == 10**9 - budget[0]


# -- item 7: buffers grow as generation proceeds -------------------------------------------

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource, sys, torch
    from logitkit import generate
    VOCAB, EOS = 16, 3

    def model(ids, mask):  # eos becomes the top token after four new tokens
        logits = torch.zeros(ids.shape[0], ids.shape[1], VOCAB)
        logits[..., 5] = 1.0
        if ids.shape[1] >= 6:
            logits[..., EOS] = 2.0
        return logits

    prompt = torch.tensor([[1, 2]])
    out = generate(model, prompt, {"selector": "greedy"}, eos_token_id=EOS, pad_token_id=0, max_new_tokens=1_000_000)
    assert out.finish_reasons == ["eos"], out.finish_reasons
    out = generate(model, prompt, None, eos_token_id=EOS, pad_token_id=0, max_new_tokens=1_000_000, num_beams=64)
    assert out.sequences.shape[1] < 20, out.sequences.shape
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """
)


def test_a_million_new_tokens_with_an_early_eos_allocates_little() -> None:
    """Up-front buffers would take 64 beams x 1e6 x 8 bytes = 512 MB each (several of them) before step one."""
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    peak_mb = int(done.stdout.strip().splitlines()[-1])
    assert peak_mb < 1500, peak_mb


def test_decode_buffers_grow_with_the_sequence(monkeypatch: pytest.MonkeyPatch) -> None:
    from logitkit import generate
    from logitkit.decoding import INITIAL_STEPS, DecodingState

    widths: list[int] = []
    reserve = DecodingState.reserve

    def spy(self: DecodingState, length: int) -> None:
        reserve(self, length)
        widths.append(int(self.sequence_buffer.shape[1]))

    monkeypatch.setattr(DecodingState, "reserve", spy)

    def model(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        assert mask.shape == ids.shape
        return torch.randn(ids.shape[0], ids.shape[1], 12, generator=torch.Generator().manual_seed(ids.shape[1]))

    steps = 3 * INITIAL_STEPS
    out = generate(model, torch.tensor([[1, 2, 3]]), {"selector": "greedy"}, max_new_tokens=steps)
    assert out.sequences.shape == (1, 3 + steps)
    assert widths[0] == 3 + INITIAL_STEPS  # not max_length up front
    assert sorted(set(widths)) == [3 + INITIAL_STEPS, 2 * (3 + INITIAL_STEPS), 3 + steps]  # doubled, capped
