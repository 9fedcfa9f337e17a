"""Token healing, logitkit's rule (``constrain``): the prompt's trailing token is trimmed and the first new token
must extend it. transformers' rule (``true``) is tested against transformers in tests/test_gc_parity.py."""

from __future__ import annotations

import pytest
import torch
from _generation_helpers import bpe_tokenizer

import logitkit

PAD = 0


@pytest.fixture(scope="module")
def tok() -> object:
    return bpe_tokenizer()


def preferring(vocab: int, scores: dict[int, float]):
    """A callable model whose next-token logits always rank the given tokens."""

    def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(input_ids.shape[0], vocab)
        for token, value in scores.items():
            logits[:, token] = value
        return logits

    return forward


def test_trailing_token_is_regenerated_as_its_best_extension(tok) -> None:
    vocab = tok.get_vocab()
    healed_text, plain_text = (
        "full st",
        "brown f",
    )  # 'st' extends to 'stop'; 'Ġf' has no longer token
    rows = [tok.encode(healed_text).ids, tok.encode(plain_text).ids]
    width = max(map(len, rows))
    ids = torch.tensor([[PAD] * (width - len(r)) + r for r in rows])
    mask = (torch.arange(width) >= torch.tensor([[width - len(r)] for r in rows])).long()
    assert tok.id_to_token(rows[0][-1]) == "st" and "stop" in vocab
    model = preferring(tok.get_vocab_size(), {vocab["o"]: 10.0, vocab["stop"]: 5.0})

    out = logitkit.generate(
        model,
        ids,
        None,
        attention_mask=mask,
        tokenizer=tok,
        token_healing="constrain",
        max_new_tokens=2,
        eos_token_id=[],
        pad_token_id=PAD,
    )
    plain = logitkit.generate(
        model,
        ids,
        None,
        attention_mask=mask,
        tokenizer=tok,
        max_new_tokens=2,
        eos_token_id=[],
        pad_token_id=PAD,
    )

    # Row 0: 'st' was trimmed (one more pad on the left) and came back as 'stop', the best extension.
    assert out.sequences[0, :width].tolist() == [PAD, *ids[0, :-1].tolist()]
    assert out.new_tokens[0, 0].item() == vocab["stop"]
    assert tok.decode(out.sequences[0].tolist(), skip_special_tokens=True).startswith("full stop")
    # Without healing the model's favourite comes first.
    assert plain.new_tokens[0, 0].item() == vocab["o"]
    # Row 1 has nothing to heal into: unchanged prompt, unconstrained first token.
    assert torch.equal(out.sequences[1, :width], ids[1])
    assert out.new_tokens[1, 0].item() == vocab["o"]


def test_token_healing_needs_a_tokenizer() -> None:
    model = preferring(10, {3: 1.0})
    with pytest.raises(ValueError, match="tokenizer"):
        logitkit.generate(model, torch.tensor([[3, 4]]), None, token_healing=True, max_new_tokens=1)


def test_transformers_healing_names_the_tokenizer_it_needs(tok) -> None:
    """``true`` re-tokenizes as transformers does: a tokenizers.Tokenizer is refused, pointing at ``constrain``."""
    model = preferring(tok.get_vocab_size(), {3: 1.0})
    with pytest.raises(ValueError, match=r"transformers tokenizer.*token_healing: constrain"):
        logitkit.generate(model, torch.tensor([[3, 4]]), None, tokenizer=tok, token_healing=True, max_new_tokens=1)


def test_prefix_search_matches_transformers_trie(tok) -> None:
    """``VocabularyPrefixes`` finds what transformers' ``ExtensionsTrie`` finds, off-vocabulary prefixes included."""
    from transformers.tokenization_python import ExtensionsTrie

    from logitkit.healing_transformers import VocabularyPrefixes

    vocab = tok.get_vocab()
    ours, theirs = VocabularyPrefixes(vocab), ExtensionsTrie(vocab)
    prefixes = [*vocab, "stq", "\n", "zzz", "Ġqx", "h"]
    for prefix in prefixes:
        assert sorted(ours.extensions(prefix)) == sorted(theirs.extensions(prefix=prefix)), prefix
    assert len(ours.extensions("st")) > 1  # the search is not vacuous
