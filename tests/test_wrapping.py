"""A transformers LogitsProcessor from logits-processor-zoo, run by logitkit at a declared stage."""

from __future__ import annotations

import pytest
import torch
from logits_processor_zoo.transformers import MultipleChoiceLogitsProcessor
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

import logitkit
from logitkit import Pipeline, Stage
from logitkit.integrations.wrapping import as_plugin, wrap_class
from logitkit.registry import Registry

VOCAB = ["[UNK]", "1", "2", "3", "4", ".", "\n", "a", "b", "c", " ", "</s>"]
CHOICES = [1, 2, 3, 4]


@pytest.fixture
def tokenizer() -> PreTrainedTokenizerFast:
    """A character-level tokenizer built in the test: one token per character, no download."""
    tok = Tokenizer(models.WordLevel({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="</s>")


def zoo(tokenizer: PreTrainedTokenizerFast) -> MultipleChoiceLogitsProcessor:
    return MultipleChoiceLogitsProcessor(tokenizer, choices=["1", "2", "3", "4"])


def test_wrapped_processor_gives_what_transformers_gives_without_mutating(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    scores = torch.randn(3, len(VOCAB), generator=torch.Generator().manual_seed(0))
    ids = torch.tensor([[7, 8, 6], [8, 9, 6], [7, 7, 7]])
    expected = zoo(tokenizer)(ids.clone(), scores.clone())
    processor = logitkit.wrap(zoo(tokenizer), name="multiple_choice", stage=Stage.LOGITS)
    before = scores.clone()
    out = Pipeline([processor])(ids, scores)
    assert torch.equal(out, expected)
    assert torch.equal(
        scores, before
    )  # the zoo processor writes into scores; the wrapper hands it a copy
    assert set(out.argmax(-1).tolist()) <= set(CHOICES)


def test_registered_wrapper_runs_at_its_declared_stage(
    tokenizer: PreTrainedTokenizerFast, make_registry
) -> None:
    cls = wrap_class(zoo(tokenizer), name="multiple_choice", stage=250)
    reg: Registry = make_registry(inline={"zoo": as_plugin(cls)})
    assert reg.processors["multiple_choice"].plugin == "zoo"
    pipe = Pipeline.from_config(
        [{"top_k": 4}, {"temperature": 0.7}, {"name": "multiple_choice"}], registry=reg
    )
    assert [p.name for p in pipe.processors] == ["multiple_choice", "temperature", "top_k"]
    scores = torch.randn(4, len(VOCAB), generator=torch.Generator().manual_seed(1))
    ids = torch.tensor([[7, 6]] * 4)
    out = pipe(ids, scores)
    assert torch.isfinite(out).sum(-1).tolist() == [4, 4, 4, 4]
    assert torch.isfinite(out[:, CHOICES]).all()
    for _ in range(3):
        assert set(pipe.next_tokens(ids, scores).tolist()) <= set(CHOICES)


def test_wrap_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError):
        logitkit.wrap(object(), name="x")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="identifier"):
        logitkit.wrap(lambda i, s: s, name="not a name")
    with pytest.raises(ValueError, match="unknown stage"):
        logitkit.wrap(lambda i, s: s, name="x", stage="nowhere")
