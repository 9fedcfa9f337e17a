"""The bytes behind each token id, for matching text across token boundaries.

Byte-level BPE tokens (GPT-2 style) can hold part of a UTF-8 character, so
decoding each token to a string on its own loses bytes (a CJK character split
over two tokens decodes to two replacement characters). Stop strings are
therefore matched on the concatenated bytes of the tokens, never on
per-token strings.

Works with a ``tokenizers.Tokenizer`` and with a transformers tokenizer (both
have ``get_vocab``).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")
#: Share of tokens spelled in GPT-2's byte alphabet above which a vocabulary counts as byte-level.
BYTE_LEVEL_MAJORITY = 0.9


@lru_cache(maxsize=1)
def byte_level_alphabet() -> dict[str, int]:
    """GPT-2's printable stand-in character for each byte, inverted: character -> byte."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def vocabulary(tokenizer: Any) -> dict[str, int]:
    """Token string -> id, added tokens included."""
    try:
        vocab = tokenizer.get_vocab(with_added_tokens=True)
    except TypeError:
        vocab = tokenizer.get_vocab()
    return dict(vocab)


def _is_byte_level(vocab: dict[str, int]) -> bool:
    # A byte-level vocabulary spells its tokens with the 256 stand-in characters; added tokens
    # (chat markers and the like) may not, so a large majority decides.
    alphabet = byte_level_alphabet()
    spelled = sum(all(ch in alphabet for ch in token) for token in vocab)
    return bool(vocab) and spelled >= BYTE_LEVEL_MAJORITY * len(vocab)


#: Recently used tables, keyed by tokenizer identity (the tokenizer is kept so its id stays unique).
_TABLES: dict[int, tuple[Any, tuple[bytes, ...]]] = {}
_TABLES_KEPT = 4


def token_bytes(tokenizer: Any) -> list[bytes]:
    """The bytes each token id stands for (index = id); built once per tokenizer object."""
    cached = _TABLES.get(id(tokenizer))
    if cached is not None and cached[0] is tokenizer:
        return list(cached[1])
    vocab = vocabulary(tokenizer)
    size = max(vocab.values(), default=-1) + 1
    table = [b""] * size
    alphabet = byte_level_alphabet()
    byte_level = _is_byte_level(vocab)
    for token, token_id in vocab.items():
        fallback = _BYTE_FALLBACK.match(token)
        if fallback:  # SentencePiece byte fallback, e.g. <0xE4>
            table[token_id] = bytes([int(fallback.group(1), 16)])
        elif byte_level:
            if all(ch in alphabet for ch in token):
                table[token_id] = bytes(alphabet[ch] for ch in token)
            else:  # an added token spelled in plain text
                table[token_id] = token.encode("utf-8")
        else:
            table[token_id] = token.replace("\u2581", " ").encode("utf-8")
    if len(_TABLES) >= _TABLES_KEPT:
        _TABLES.pop(next(iter(_TABLES)))
    _TABLES[id(tokenizer)] = (tokenizer, tuple(table))
    return table


def token_strings(tokenizer: Any) -> dict[int, str]:
    """Id -> token string as the vocabulary spells it (byte-level tokens keep their stand-in characters)."""
    return {token_id: token for token, token_id in vocabulary(tokenizer).items()}
