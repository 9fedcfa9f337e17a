"""Text in, text out for ``logitkit.generate``: tokenize and left-pad prompts, decode what was generated.

Works with a transformers tokenizer (``encode`` with its special tokens, as
``tokenizer(text)`` does) or a raw ``tokenizers.Tokenizer`` (``encode(text).ids``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch


def text_prompts(prompts: Any) -> list[str] | None:
    """The prompts as a list of strings when they are text (one string or a list of them), else None."""
    if isinstance(prompts, str):
        return [prompts]
    if isinstance(prompts, (list, tuple)) and prompts and all(isinstance(p, str) for p in prompts):
        return list(prompts)
    return None


def token_ids(tokenizer: Any, text: str) -> list[int]:
    """One prompt's ids, with the special tokens the tokenizer adds to a prompt (a bos, for example)."""
    if hasattr(tokenizer, "encode_batch"):  # a raw tokenizers.Tokenizer: its post-processor decides
        return list(tokenizer.encode(text).ids)
    return list(tokenizer.encode(text))


def left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` with every row right-aligned, as decoder-only generation needs."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        if row:
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
    return ids, mask


def encode_prompts(texts: list[str], tokenizer: Any, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenize and left-pad text prompts; raises when there is no tokenizer or a prompt is empty."""
    if tokenizer is None:
        raise ValueError("text prompts need a tokenizer: pass tokenizer= to generate()")
    rows = [token_ids(tokenizer, text) for text in texts]
    empty = [i for i, row in enumerate(rows) if not row]
    if empty:
        raise ValueError(f"prompts {empty} encode to no tokens; give them some text or a tokenizer that adds a bos")
    return left_pad(rows, pad)


def generated_ids(new_tokens: list[int], eos: Sequence[int]) -> list[int]:
    """A row's generated ids up to its first eos (the tokens after it are fill)."""
    for i, token in enumerate(new_tokens):
        if token in eos:
            return new_tokens[:i]
    return new_tokens


def decode_new(new_tokens: torch.Tensor, tokenizer: Any, eos: Sequence[int]) -> list[str]:
    """The text each row generated, without special tokens."""
    return [
        str(tokenizer.decode(generated_ids(row, eos), skip_special_tokens=True))
        for row in new_tokens.tolist()
    ]


def chat_prompt(folder: Any, text: str) -> str:
    """``text`` as a user turn in the chat template of the model folder's tokenizer, ready for the reply."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(f"{folder}: the tokenizer has no chat template; drop --chat")
    messages = [{"role": "user", "content": text}]
    return str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
