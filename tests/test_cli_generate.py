"""``logitkit generate``: streams the demo model's text through the configured pipeline."""

from __future__ import annotations

import re

import pytest
import torch

from logitkit.cli import main
from logitkit.commands.generate import StreamDecoder
from logitkit.demo import MODEL_DIR, load_codec

SUMMARY = re.compile(r"^\[(\d+) tokens, [\d.]+ tokens/s, finish: (\w+)\]$")


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["generate", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_code_preset_completes_a_function(capsys):
    code, out, err = run_cli(
        capsys, "def fibonacci(n):", "--preset", "code", "--max-new-tokens", "24"
    )
    assert code == 0
    assert out.startswith("def fibonacci(n):")
    completion = out[len("def fibonacci(n):") :]
    assert completion.strip()
    assert "\n    " in completion  # an indented body
    summary = SUMMARY.match(err.strip().splitlines()[-1])
    assert summary is not None, err
    assert int(summary.group(1)) <= 24
    assert summary.group(2) in {"length", "eos"}


def test_greedy_output_is_deterministic_and_seeded_sampling_repeats(capsys):
    first = run_cli(capsys, "import os", "--preset", "code", "-n", "10")[1]
    assert run_cli(capsys, "import os", "--preset", "code", "-n", "10")[1] == first
    sampled = run_cli(capsys, "import os", "--preset", "flat", "-n", "10", "--seed", "7")[1]
    assert run_cli(capsys, "import os", "--preset", "flat", "-n", "10", "--seed", "7")[1] == sampled


def test_config_file_with_preset_flag_overrides(tmp_path, capsys):
    config = tmp_path / "gen.yaml"
    config.write_text(
        "preset: creative\nprocessors:\n  - temperature: 0.0\ngeneration:\n  max_new_tokens: 5\n"
    )
    code, out, err = run_cli(capsys, "x = ", "--config", str(config))
    assert code == 0
    assert (
        SUMMARY.match(err.strip().splitlines()[-1]).group(1) == "5"
    )  # the config's max_new_tokens
    greedy = run_cli(capsys, "x = ", "--preset", "code", "-n", "5")[1]
    assert out == greedy  # temperature 0 from the file overrides the preset's 1.5
    # --preset replaces the file's preset; the file's own fields still win.
    assert run_cli(capsys, "x = ", "--config", str(config), "--preset", "flat")[1] == greedy


def test_any_local_model_folder(tmp_path, capsys):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=4096, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, eos_token_id=0, bos_token_id=0)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(tmp_path)
    (tmp_path / "tokenizer.json").write_bytes((MODEL_DIR / "tokenizer.json").read_bytes())
    code, out, err = run_cli(
        capsys, "def f():", "--model", str(tmp_path), "--preset", "code", "-n", "6"
    )
    assert code == 0
    assert out.startswith("def f():")
    assert SUMMARY.match(err.strip().splitlines()[-1])


def test_not_a_model_folder(tmp_path, capsys):
    code, _, err = run_cli(capsys, "x", "--model", str(tmp_path))
    assert code == 2
    assert "not a transformers model folder" in err


def test_bad_preset_or_config_exits_2_with_one_line_per_problem(tmp_path, capsys):
    code, _, err = run_cli(capsys, "x", "--preset", "cod")
    assert code == 2
    assert err.strip() == "--preset: preset: unknown preset 'cod'; did you mean 'code'?"
    bad = tmp_path / "bad.yaml"
    bad.write_text("processors:\n  - top_p: 1.5\n  - top_k: 0\n")
    code, _, err = run_cli(capsys, "x", "--config", str(bad))
    assert code == 2
    assert err.strip().splitlines() == [
        f"{bad}: processors[0].top_p: must be > 0 and <= 1 (got 1.5)",
        f"{bad}: processors[1].top_k: must be >= 1 (got 0)",
    ]


@pytest.mark.parametrize("text", ["✓✓ naïve", "数据分析", "emoji 🙂🙂 end"])
def test_stream_decoder_never_prints_half_a_character(text):
    codec = load_codec()
    ids = codec.encode(text)
    decoder = StreamDecoder(codec.decode)
    pieces = [decoder.push(token) for token in ids]
    pieces.append(decoder.flush())
    assert "".join(pieces) == text
    assert not any("\ufffd" in piece for piece in pieces)
    assert len([p for p in pieces if p]) > 1 or len(ids) == 1  # it streamed, not one final dump


def test_stop_string_ends_the_text_and_is_reported(tmp_path, capsys):
    prompt = "def is_empty(items):"
    # Take the stop string from the model's own greedy text, so the test does not hang on what it writes.
    free = run_cli(capsys, prompt, "--preset", "code", "-n", "40")[1][len(prompt) :]
    words = re.findall(r"[A-Za-z_]{4,}", free)
    assert len(words) >= 3, free
    stop = words[2]
    config = tmp_path / "stop.yaml"
    config.write_text(f'preset: code\ngeneration:\n  stop_strings: ["{stop}"]\n  max_new_tokens: 40\n')
    code, out, err = run_cli(capsys, prompt, "--config", str(config))
    assert code == 0
    assert out.rstrip().endswith(stop)
    assert len(out) < len(prompt) + len(free)
    assert SUMMARY.match(err.strip().splitlines()[-1]).group(2) == "stop_string"


def test_beam_search_prints_the_best_sequence_once(tmp_path, capsys):
    config = tmp_path / "beam.yaml"
    config.write_text("preset: code\ngeneration:\n  num_beams: 3\n")
    # A prompt longer than the 8 new tokens cannot reappear in the completion; three copies would mean one per beam.
    prompt = "import os\nimport sys\nimport re\n"
    code, out, err = run_cli(capsys, prompt, "--config", str(config), "-n", "8")
    assert code == 0
    assert out.startswith(prompt) and out.count(prompt) == 1
    assert SUMMARY.match(err.strip().splitlines()[-1])
