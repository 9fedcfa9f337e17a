"""Token healing: give the model back the prompt's last token, constrained to extensions of it.

A prompt ending in ``"http:"`` may be split so that the last token is a
worse boundary than the model would choose (``":"`` instead of ``"://"``).
Healing drops that trailing token and lets the first generated token be any
vocabulary token that starts with it, the idea of transformers'
``heal_tokens``. transformers biases those tokens (+10, +1 more for the
original); logitkit constrains the first step to exactly that set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from logitkit.tokenbytes import token_strings


@dataclass(frozen=True)
class HealedPrompts:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    #: Per healed row, the token ids the first generated token may take.
    extensions: dict[int, list[int]]

    def first_step_mask(
        self, rows: int, vocab_size: int, expand: int, device: torch.device
    ) -> torch.Tensor:
        """Bool ``[rows, vocab]``: True where the first token is allowed (rows repeated ``expand`` times)."""
        allowed = torch.ones(rows // expand, vocab_size, dtype=torch.bool, device=device)
        for row, ids in self.extensions.items():
            allowed[row] = False
            allowed[
                row,
                torch.tensor([i for i in ids if i < vocab_size], dtype=torch.long, device=device),
            ] = True
        return allowed.repeat_interleave(expand, dim=0)


def heal_prompts(
    input_ids: torch.Tensor, attention_mask: torch.Tensor, tokenizer: Any, pad_token_id: int
) -> HealedPrompts:
    """Trim each left-padded prompt's last token where the vocabulary has longer tokens starting with it.

    A healed row is shifted right by one (one more pad on the left), so the
    batch keeps its shape. Rows with one real token, or whose last token has no
    longer extension, are left as they are.
    """
    strings = token_strings(tokenizer)
    by_prefix_cache: dict[int, list[int]] = {}
    ids = input_ids.clone()
    mask = attention_mask.clone()
    extensions: dict[int, list[int]] = {}
    lengths = attention_mask.sum(dim=-1).tolist()
    tails = input_ids[:, -1].tolist()
    for row, (tail, length) in enumerate(zip(tails, lengths, strict=True)):
        if length < 2 or not bool(attention_mask[row, -1]):
            continue
        if tail not in by_prefix_cache:
            prefix = strings.get(tail, "")
            by_prefix_cache[tail] = [
                i for i, s in strings.items() if prefix and s.startswith(prefix)
            ]
        found = by_prefix_cache[tail]
        if len(found) <= 1:
            continue  # nothing longer to heal into
        ids[row] = torch.cat([ids.new_full((1,), pad_token_id), input_ids[row, :-1]])
        mask[row] = torch.cat([mask.new_zeros(1), attention_mask[row, :-1]])
        extensions[row] = sorted(found)
    return HealedPrompts(ids, mask, extensions)
