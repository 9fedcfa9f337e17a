"""Streaming through transformers streamers and ``logitkit.stream``; text prompts in, text out; ``--chat``."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import PreTrainedTokenizerFast, TextIteratorStreamer, TextStreamer
from transformers.generation.streamers import BaseStreamer

import logitkit
from logitkit.cli import main
from logitkit.demo import MODEL_DIR, load_codec, load_model

SAMPLING = {"processors": [{"temperature": 0.9}, {"top_k": 40}]}


@pytest.fixture(scope="module")
def model() -> Any:
    return load_model()


@pytest.fixture(scope="module")
def fast_tokenizer() -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast(tokenizer_file=str(MODEL_DIR / "tokenizer.json"))


class Recorder(BaseStreamer):
    """A streamer that keeps what transformers' protocol hands it."""

    def __init__(self) -> None:
        self.puts: list[torch.Tensor] = []
        self.ended = 0

    def put(self, value: torch.Tensor) -> None:
        self.puts.append(value.clone())

    def end(self) -> None:
        self.ended += 1


def prompt_ids(text: str) -> torch.Tensor:
    return torch.tensor([load_codec().encode(text)])


def test_a_streamer_the_iterator_and_the_plain_call_get_the_same_tokens(
    model: Any, fast_tokenizer: PreTrainedTokenizerFast, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = prompt_ids("def add(a, b):")
    plain = logitkit.generate(model, ids, SAMPLING, seeds=[3], max_new_tokens=12)
    new = plain.new_tokens[0]

    recorder = Recorder()
    logitkit.generate(model, ids, SAMPLING, seeds=[3], max_new_tokens=12, streamer=recorder)
    assert torch.equal(recorder.puts[0], ids) and recorder.ended == 1  # the prompt first, as transformers
    assert torch.equal(torch.cat(recorder.puts[1:]), new)

    streamed = list(logitkit.stream(model, ids, SAMPLING, seeds=[3], max_new_tokens=12))
    assert torch.equal(torch.stack(streamed, dim=1)[0], new)

    texts = TextIteratorStreamer(fast_tokenizer, skip_prompt=True, skip_special_tokens=True)
    worker = threading.Thread(
        target=logitkit.generate, args=(model, ids, SAMPLING),
        kwargs={"seeds": [3], "max_new_tokens": 12, "streamer": texts},
    )  # fmt: skip
    worker.start()
    text = "".join(texts)
    worker.join()
    expected = fast_tokenizer.decode(new, skip_special_tokens=True)
    assert text == expected

    capsys.readouterr()
    logitkit.generate(model, ids, SAMPLING, seeds=[3], max_new_tokens=12,
                      streamer=TextStreamer(fast_tokenizer, skip_prompt=True, skip_special_tokens=True))  # fmt: skip
    assert capsys.readouterr().out == expected + "\n"


def test_the_iterator_streams_any_batch_and_keeps_the_output(model: Any) -> None:
    rows = [load_codec().encode(t) for t in ("import os", "class A:", "for i in")]
    width = max(map(len, rows))
    ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    plain = logitkit.generate(model, ids, SAMPLING, attention_mask=mask, seeds=[1, 2, 3], max_new_tokens=8)
    tokens = logitkit.stream(model, ids, SAMPLING, attention_mask=mask, seeds=[1, 2, 3], max_new_tokens=8)
    steps = list(tokens)
    assert all(step.shape == (3,) for step in steps)
    assert torch.equal(torch.stack(steps, dim=1), plain.new_tokens)
    assert torch.equal(tokens.output.sequences, plain.sequences)


def test_an_error_in_the_generation_reaches_the_iterating_thread(model: Any) -> None:
    with pytest.raises(ValueError, match="text prompts need a tokenizer"):
        list(logitkit.stream(model, ["no tokenizer given"], SAMPLING, max_new_tokens=2))


def test_a_streamer_is_refused_with_beam_search(model: Any) -> None:
    with pytest.raises(ValueError, match="a streamer needs a search that picks one token per step"):
        logitkit.generate(model, prompt_ids("x = "), None, num_beams=2, max_new_tokens=2, streamer=Recorder())


def test_text_prompts_are_tokenized_and_left_padded(model: Any, fast_tokenizer: PreTrainedTokenizerFast) -> None:
    prompts = ["def add(a, b):", "import os", "x"]
    raw = load_codec().tokenizer
    batched = logitkit.generate(model, prompts, None, tokenizer=raw, max_new_tokens=8)
    assert batched.texts is not None and len(batched.texts) == 3
    for prompt, text in zip(prompts, batched.texts, strict=True):
        alone = logitkit.generate(model, prompt, None, tokenizer=raw, max_new_tokens=8)
        assert alone.texts == [text], prompt  # left padding changes nothing for a row
    # A transformers tokenizer works the same way.
    assert logitkit.generate(model, prompts, None, tokenizer=fast_tokenizer, max_new_tokens=8).texts == batched.texts
    with pytest.raises(ValueError, match="text prompts need a tokenizer"):
        logitkit.generate(model, prompts, None, max_new_tokens=2)
    with pytest.raises(TypeError, match="input_ids must be a LongTensor"):
        logitkit.generate(model, [[1, 2]], None, max_new_tokens=2)


def test_chat_applies_the_models_chat_template(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "chat-model"
    load_model().save_pretrained(folder)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(MODEL_DIR / "tokenizer.json"))
    tokenizer.chat_template = "{% for m in messages %}# {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}# assistant:"
    tokenizer.save_pretrained(folder)
    assert main(["generate", "hello", "--model", str(folder), "--chat", "--preset", "code", "-n", "4"]) == 0
    chat = capsys.readouterr().out
    assert main(["generate", "# user: hello\n# assistant:", "--model", str(folder), "--preset", "code", "-n", "4"]) == 0
    plain = capsys.readouterr().out
    assert chat == plain[len("# user: hello\n# assistant:"):]  # the reply to the templated prompt, prompt not echoed
    assert main(["generate", "hello", "--chat", "-n", "2"]) == 2
    assert "has no chat template" in capsys.readouterr().err
