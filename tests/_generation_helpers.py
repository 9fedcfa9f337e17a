"""Tiny randomly initialised models, prompts, a trained byte-level BPE tokenizer and scripted models.

Shared by the generation tests. Nothing is downloaded: models come from
configs with random weights, the tokenizer is trained on a few sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import torch
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    T5Config,
    T5ForConditionalGeneration,
)

VOCAB = 96
PAD = 0


def tiny_llama(vocab: int = VOCAB, seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, bos_token_id=1, eos_token_id=2, pad_token_id=PAD,
    )  # fmt: skip
    return LlamaForCausalLM(config).eval()


def tiny_gpt2(vocab: int = VOCAB, seed: int = 0) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=256,
        bos_token_id=1,
        eos_token_id=2,
    )
    return GPT2LMHeadModel(config).eval()


def tiny_t5(vocab: int = VOCAB, seed: int = 0) -> T5ForConditionalGeneration:
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=vocab, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
        decoder_start_token_id=PAD, pad_token_id=PAD, eos_token_id=1,
    )  # fmt: skip
    return T5ForConditionalGeneration(config).eval()


def left_padded(
    lengths: Sequence[int], vocab: int = VOCAB, seed: int = 1, low: int = 3
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random prompts of the given lengths, left-padded with PAD, and their attention mask."""
    gen = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.full((len(lengths), width), PAD, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, width - n :] = torch.randint(low, vocab, (n,), generator=gen)
        mask[row, width - n :] = 1
    return ids, mask


def frequent_tokens(
    model: Any, ids: torch.Tensor, mask: torch.Tensor, n: int, **kwargs: Any
) -> list[int]:
    """The ``n`` tokens greedy decoding emits most often: eos candidates that the model really produces."""
    out = model.generate(
        ids, attention_mask=mask, do_sample=False, max_new_tokens=16, pad_token_id=PAD, **kwargs
    )
    new = out[:, -16:].flatten()
    counts = torch.bincount(new, minlength=VOCAB)
    counts[PAD] = 0
    return [int(t) for t in torch.argsort(counts, descending=True, stable=True)[:n]]


CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, this is a tiny corpus for a tiny tokenizer",
    "stop here. STOP now. full stop",
    "你好世界，这是一个测试。",
    "世界很大，我们一起去看看。",
    "東京は日本の首都です。",
] * 3


@lru_cache(maxsize=1)
def bpe_tokenizer() -> Any:
    """A byte-level BPE tokenizer trained here; its small vocabulary splits CJK characters into byte pieces."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    return tok


class Scripted:
    """A callable 'model' that emits a fixed continuation per row: one-hot logits for the next scripted token.

    Row r, after the prompt, emits ``scripts[r][0], scripts[r][1], ...`` and then
    ``filler`` forever. ``delay`` seconds are slept per call (for max_time tests).
    """

    def __init__(
        self,
        scripts: Sequence[Sequence[int]],
        prompt_length: int,
        vocab: int,
        filler: int,
        delay: float = 0.0,
    ) -> None:
        self.scripts = [list(s) for s in scripts]
        self.prompt_length = prompt_length
        self.vocab = vocab
        self.filler = filler
        self.delay = delay

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.delay:
            import time

            time.sleep(self.delay)
        step = input_ids.shape[1] - self.prompt_length
        logits = torch.zeros(input_ids.shape[0], self.vocab)
        for row, script in enumerate(self.scripts):
            token = script[step] if step < len(script) else self.filler
            logits[row, token] = 10.0
        return logits


@lru_cache(maxsize=1)
def demo_model() -> Any:
    """The shipped demo model, loaded once per test process."""
    from logitkit.demo import load_model

    return load_model()


@lru_cache(maxsize=1)
def demo_codec() -> Any:
    """The demo model's tokenizer, loaded once per test process."""
    from logitkit.demo import load_codec

    return load_codec()
