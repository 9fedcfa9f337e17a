"""Stopping criteria and finish reasons, with scripted models and a byte-level BPE tokenizer trained here."""

from __future__ import annotations

import pytest
import torch
from _generation_helpers import Scripted, bpe_tokenizer

import logitkit
from logitkit import ConfigError
from logitkit.tokenbytes import token_bytes

PAD, EOS = 0, 1  # "<pad>" and "<eos>" are the tokenizer's first two tokens


@pytest.fixture(scope="module")
def tok() -> object:
    return bpe_tokenizer()


def encode(tok: object, text: str) -> list[int]:
    return list(tok.encode(text).ids)  # type: ignore[attr-defined]


def run(tok, scripts, *, prompt=None, **settings):
    vocab = tok.get_vocab_size()
    prompt_ids = torch.tensor(prompt or [encode(tok, "the")[0]] * 1).repeat(len(scripts), 1)
    model = Scripted(
        scripts,
        prompt_ids.shape[1],
        vocab,
        filler=encode(tok, "o")[0],
        delay=settings.pop("delay", 0.0),
    )
    return logitkit.generate(
        model, prompt_ids, None, tokenizer=tok, eos_token_id=EOS, pad_token_id=PAD, **settings
    )


def test_cjk_stop_string_split_over_byte_pieces_is_found(tok) -> None:
    text = "hello 世界小猫 stop here"
    ids = encode(tok, text)
    table = token_bytes(tok)
    # Locate the tokens that spell 小猫 and check that the case is the hard one.
    stop = "小猫".encode()
    spans = [
        (i, j)
        for i in range(len(ids))
        for j in range(i + 1, len(ids) + 1)
        if stop in b"".join(table[t] for t in ids[i:j])
    ]
    first_end = min(j for _, j in spans)
    start = max(i for i, j in spans if j == first_end)
    pieces = [table[t] for t in ids[start:first_end]]
    assert len(pieces) >= 2, "the stop string must span several tokens"
    assert any(_not_utf8(p) for p in pieces), "some piece must be invalid UTF-8 on its own"

    out = run(tok, [ids], stop_strings=["小猫"], max_new_tokens=len(ids) + 5)
    assert out.finish_reasons == ["stop_string"]
    assert out.new_tokens[0].tolist() == ids[:first_end]
    assert stop in b"".join(table[t] for t in out.new_tokens[0].tolist())


def _not_utf8(piece: bytes) -> bool:
    try:
        piece.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def test_ascii_stop_string_across_token_boundaries(tok) -> None:
    ids = encode(tok, "the quick brown fox jumps")
    out = run(tok, [ids], stop_strings=["k bro"], max_new_tokens=len(ids) + 5)
    generated = tok.decode(out.new_tokens[0].tolist())
    assert out.finish_reasons == ["stop_string"]
    assert generated.endswith("k brow") or generated.endswith(
        "k bro"
    )  # stops at the token completing it
    assert "fox" not in generated


def test_stop_string_reaching_back_into_the_prompt(tok) -> None:
    prompt = encode(tok, "full st")
    out = run(tok, [encode(tok, "op now")], prompt=prompt, stop_strings=["stop"], max_new_tokens=6)
    assert out.finish_reasons == ["stop_string"]
    assert out.new_tokens.shape[1] <= 2


def test_finish_reasons_for_every_way_a_row_ends(tok) -> None:
    filler = encode(tok, "o")[0]
    scripts = [
        [filler, filler, EOS],  # eos
        encode(tok, "full stop") + [filler] * 4,  # stop string
        [filler] * 10,  # runs to max_new_tokens
    ]
    out = run(tok, scripts, stop_strings=["stop"], max_new_tokens=8)
    assert out.finish_reasons == ["eos", "stop_string", "length"]
    eos_row = out.new_tokens[0].tolist()
    assert eos_row[:3] == [filler, filler, EOS] and set(eos_row[3:]) == {
        PAD
    }  # finished rows are padded
    assert out.new_tokens.shape[1] == 8


def test_eos_as_a_list_of_ids(tok) -> None:
    a, b = encode(tok, "x")[0], encode(tok, "q")[0]
    filler = encode(tok, "o")[0]
    model = Scripted([[filler, a], [b], [filler] * 9], 1, tok.get_vocab_size(), filler)
    out = logitkit.generate(
        model,
        torch.full((3, 1), filler),
        None,
        eos_token_id=[a, b],
        pad_token_id=PAD,
        max_new_tokens=5,
    )
    assert out.finish_reasons == ["eos", "eos", "length"]


def test_max_length_counts_the_prompt(tok) -> None:
    out = run(tok, [[encode(tok, "o")[0]] * 20], max_length=6)
    assert out.sequences.shape[1] == 6
    assert out.finish_reasons == ["length"]


def test_max_time_stops_with_reason_time(tok) -> None:
    out = run(tok, [[encode(tok, "o")[0]] * 200] * 2, max_time=0.15, max_new_tokens=200, delay=0.03)
    assert out.finish_reasons == ["time", "time"]
    assert out.new_tokens.shape[1] < 200


def test_stop_strings_need_a_tokenizer() -> None:
    model = Scripted([[3]], 1, 10, 3)
    with pytest.raises(ConfigError, match="stop_strings"):
        logitkit.generate(model, torch.tensor([[3]]), None, stop_strings=["x"], max_new_tokens=2)


def test_bad_generation_settings_are_config_errors() -> None:
    model = Scripted([[3]], 1, 10, 3)
    with pytest.raises(ConfigError) as info:
        logitkit.generate(model, torch.tensor([[3]]), None, num_beams=3, num_beam_groups=2)
    assert "generation" in str(info.value) and "num_beam_groups" in str(info.value)


def test_every_criterion_is_registered_through_the_hook(reg) -> None:
    assert {"eos", "stop_strings", "max_new_tokens", "max_length", "max_time"} <= set(
        reg.stopping_criteria
    )


@pytest.mark.parametrize("num_beams", [1, 3])
def test_ascii_stop_strings_match_transformers(tok, num_beams: int) -> None:
    """Same tokens as transformers' StopStringCriteria, greedy and beam (eos set so both pad finished rows)."""
    import re

    from _generation_helpers import left_padded, tiny_llama
    from transformers import PreTrainedTokenizerFast

    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    model = tiny_llama(vocab=tok.get_vocab_size())
    ids, mask = left_padded([5, 7, 3, 7], vocab=tok.get_vocab_size())
    common = dict(attention_mask=mask, max_new_tokens=12, pad_token_id=PAD, num_beams=num_beams)
    free = model.generate(ids, do_sample=False, eos_token_id=EOS, **common)
    # Stop strings the model really produces: the first two-letter run of each row's text.
    stops = sorted(
        {m[0] for row in free for m in [re.findall(r"[a-z]{2}", hf_tok.decode(row[7:]))] if m}
    )
    assert stops
    ref = model.generate(
        ids, do_sample=False, eos_token_id=EOS, stop_strings=stops, tokenizer=hf_tok, **common
    )
    out = logitkit.generate(
        model, ids, None, eos_token_id=EOS, stop_strings=stops, tokenizer=tok, **common
    )
    assert torch.equal(out.sequences, ref)
    if (
        num_beams == 1
    ):  # in beam search the stopped beams may lose to longer ones; equality is the check
        assert "stop_string" in out.finish_reasons


def test_stop_string_check_agrees_with_transformers_on_every_prefix(tok) -> None:
    from transformers import PreTrainedTokenizerFast
    from transformers.generation.stopping_criteria import StopStringCriteria

    from logitkit.settings import GenerationSettings
    from logitkit.stopping import StopContext
    from logitkit_builtins.stopping import StopStrings

    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    stops = ["小猫", "k bro", "op"]
    ids = encode(tok, "the quick brown fox, 世界小猫 stop here")
    theirs = StopStringCriteria(hf_tok, stops)
    settings = GenerationSettings(stop_strings=stops)
    ours = StopStrings.from_settings(StopContext(settings, (), 1, 100, tok))
    assert ours is not None
    hits = []
    for n in range(2, len(ids) + 1):
        seq = torch.tensor([ids[:n]])
        mine = ours.check(seq, n - 1)
        hits.append(bool(mine[0]) if mine is not None else False)
        assert hits[-1] == bool(theirs(seq, None)[0]), tok.decode(ids[:n])
    assert sum(hits) >= 3


def test_sentencepiece_byte_fallback_tokens_are_their_bytes() -> None:
    class SentencePieceLike:
        """A vocabulary with '▁' for spaces and <0xNN> byte-fallback pieces."""

        def get_vocab(self) -> dict[str, int]:
            return {"<0xE5>": 0, "<0xB0>": 1, "<0x8F>": 2, "▁cat": 3, "小": 4}

    table = token_bytes(SentencePieceLike())
    assert table == [b"\xe5", b"\xb0", b"\x8f", b" cat", "小".encode()]
    assert b"".join(table[:3]).decode() == "小"


def test_added_tokens_outside_the_byte_alphabet_keep_their_text(tok) -> None:
    class WithChatMarker:
        def get_vocab(self) -> dict[str, int]:
            vocab = dict(tok.get_vocab())
            vocab["<｜end▁of▁turn｜>"] = len(vocab)
            return vocab

    table = token_bytes(WithChatMarker())
    assert table[-1] == "<｜end▁of▁turn｜>".encode()
    assert table[tok.token_to_id("Ġ")] == b" "  # the rest is still read as byte-level


def test_a_stopping_criterion_must_subclass_the_contract(make_registry) -> None:
    from logitkit import hookimpl

    class NotACriterion:
        name = "nope"

    class Plugin:
        @hookimpl
        def register_stopping_criteria(self, register):  # type: ignore[no-untyped-def]
            register(NotACriterion)

    reg = make_registry(inline={"bad": Plugin()})
    assert "nope" not in reg.stopping_criteria
    assert any("StoppingCriterion" in f.error for f in reg.failures)


@pytest.mark.parametrize("search", [{"num_beams": 2}, {"num_beams": 4, "num_beam_groups": 2}])
def test_max_time_ends_beam_searches_with_reason_time(search) -> None:
    import time as clock

    from _generation_helpers import left_padded, tiny_llama

    llama = tiny_llama()
    ids, mask = left_padded([4, 4])

    def slow(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        clock.sleep(0.03)
        return llama(input_ids=input_ids, attention_mask=attention_mask).logits

    out = logitkit.generate(
        slow,
        ids,
        None,
        attention_mask=mask,
        eos_token_id=[],
        max_time=0.15,
        max_new_tokens=60,
        **search,
    )
    assert out.finish_reasons == ["time", "time"]
    assert out.new_tokens.shape[1] < 60
