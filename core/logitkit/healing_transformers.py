"""Token healing as transformers 5.24's ``heal_tokens`` does it (``token_healing: true``).

transformers decodes the prompts, strips them, re-tokenizes them with the
tokenizer's own padding, replaces bos by pad, and then, for each row whose
tail token has longer vocabulary tokens starting with it, regenerates that
tail: one greedy step from the prompt without it, under a ``sequence_bias`` of
+10 for every extension and +11 for the original tail. The healed prompt
keeps its length, so the attention mask passed in stays the one used after.

logitkit's own rule (``token_healing: constrain``, ``logitkit.healing``)
trims the tail and constrains the first generated token to the extensions
instead; this module is the drop-in one, and follows transformers' steps in
the same order so the ids agree, its quirks included (a tail whose text is
not a path of the vocabulary extends from the longest path it shares).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger("logitkit.generate")

#: transformers' bias for each extension of the tail token, and its extra for the tail itself.
EXTENSION_BIAS = 10.0
ORIGINAL_EXTRA = 1.0

#: One greedy step: (one-row prompt [1, length], its mask, {token: bias}) -> that row with its new token.
HealStep = Callable[[torch.Tensor, torch.Tensor, dict[int, float]], torch.Tensor]

#: The tokenizer methods transformers' healing calls.
NEEDED = ("batch_decode", "decode", "get_vocab", "convert_tokens_to_ids", "convert_ids_to_tokens", "__call__")


@dataclass(frozen=True)
class RetokenizedPrompts:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor


class VocabularyPrefixes:
    """Vocabulary strings found by prefix, as transformers' ``ExtensionsTrie.extensions`` finds them."""

    def __init__(self, vocab: dict[str, int]) -> None:
        self._sorted = sorted(token for token in vocab if token)

    def _starts(self, prefix: str) -> bool:
        at = bisect.bisect_left(self._sorted, prefix)
        return at < len(self._sorted) and self._sorted[at].startswith(prefix)

    def extensions(self, prefix: str) -> list[str]:
        """Tokens extending ``prefix``; a prefix that leaves the vocabulary's paths extends from where it left."""
        depth = 0
        while depth < len(prefix) and self._starts(prefix[: depth + 1]):
            depth += 1
        shared = prefix[:depth]
        at = bisect.bisect_left(self._sorted, shared)
        found = []
        while at < len(self._sorted) and self._sorted[at].startswith(shared):
            found.append(prefix + self._sorted[at][depth:])
            at += 1
        return found


def check_tokenizer(tokenizer: Any) -> None:
    missing = [name for name in NEEDED if not hasattr(tokenizer, name)]
    if missing or not callable(tokenizer):
        raise ValueError(
            "token_healing: true follows transformers' heal_tokens, which re-tokenizes the prompts: it needs a "
            f"transformers tokenizer (this one lacks {', '.join(missing) or '__call__'}); "
            "token_healing: constrain works with a tokenizers.Tokenizer"
        )


def retokenize(input_ids: torch.Tensor, tokenizer: Any) -> RetokenizedPrompts:
    """The prompts decoded, stripped and tokenized again, bos replaced by pad (as transformers does)."""
    texts = [text.strip() for text in tokenizer.batch_decode(input_ids, skip_special_tokens=True)]
    encoded = tokenizer(texts, return_tensors="pt", padding=True)
    ids = encoded["input_ids"].to(input_ids.device)
    mask = encoded["attention_mask"].to(input_ids.device)
    bos, pad = tokenizer.bos_token_id, tokenizer.pad_token_id
    if bos is not None and pad is not None:
        # transformers: "replace bos with pad to not condition healing on it"
        ids = torch.where(ids == bos, torch.full_like(ids, pad), ids)
    return RetokenizedPrompts(ids, mask)


def _tail_strings(tokenizer: Any, tails: list[int]) -> list[str]:
    """Each tail token's text, spaces written as the vocabulary's space token (transformers' lookup)."""
    texts = [str(tokenizer.decode(t)) for t in tails]
    space_id = tokenizer.convert_tokens_to_ids(" ")
    if space_id is None:
        return texts
    space = tokenizer.convert_ids_to_tokens(space_id)[0]
    return [text.replace(" ", space) for text in texts]


def _token_id(tokenizer: Any, token: str, row: int) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if found is None:
        raise ValueError(f"token_healing: row {row}: the tokenizer has no id for the extension {token!r}")
    return int(found)


def step_mask(row: torch.Tensor, pad: int | None, eos: tuple[int, ...]) -> torch.Tensor:
    """The mask transformers infers for the healing step's prompt (it passes none): pads are masked out
    when the prompt holds one and pad is not an eos id."""
    if pad is None or pad in eos or not bool((row == pad).any()):
        return torch.ones_like(row)
    return (row != pad).long()


def heal_like_transformers(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, tokenizer: Any, eos: tuple[int, ...], step: HealStep
) -> tuple[torch.Tensor, torch.Tensor]:
    """The healed prompts and the attention mask the generation then uses."""
    check_tokenizer(tokenizer)
    prompts = retokenize(input_ids, tokenizer)
    ids = prompts.input_ids.clone()
    if ids.numel() == 0:
        return ids, prompts.attention_mask
    pad, bos = tokenizer.pad_token_id, tokenizer.bos_token_id
    prefixes = VocabularyPrefixes(tokenizer.get_vocab())
    tails = ids[:, -1].tolist()
    for row, (tail, text) in enumerate(zip(tails, _tail_strings(tokenizer, tails), strict=True)):
        if bool((ids[row] == pad).all()):
            continue  # an empty prompt
        bias = {_token_id(tokenizer, t, row): EXTENSION_BIAS for t in prefixes.extensions(text)}
        if len(bias) <= 1:
            continue  # nothing longer to heal into
        if tail not in bias:
            raise ValueError(
                f"token_healing: row {row}'s last token {tail} is not among the vocabulary strings its text "
                f"{text!r} extends to, so transformers' heal_tokens fails on it (a KeyError there)"
            )
        bias[tail] += ORIGINAL_EXTRA
        trimmed = ids[row, :-1].clone()
        if trimmed.numel() == 0:
            continue
        if int((ids[row] != pad).sum()) == 1 and bos is not None:
            trimmed[-1] = bos  # a one-token prompt is regenerated from bos
        one = trimmed.unsqueeze(0)
        ids[row] = step(one, step_mask(one, pad, eos), bias)[0]
    if ids.shape == attention_mask.shape:
        return ids, attention_mask  # transformers keeps the mask it was given
    log.warning(
        "token_healing: the prompts re-tokenized to shape %s, not %s; the tokenizer's attention mask is used "
        "(transformers would keep the original one, which no longer fits)",
        tuple(ids.shape), tuple(attention_mask.shape),
    )  # fmt: skip
    return ids, prompts.attention_mask
