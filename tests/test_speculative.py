"""Speculative decoding (prompt_lookup, assisted, early_exit, universal_assisted).

Greedy: identical ids to plain greedy decoding at batch 1 and a left-padded
batch of 4, with processors (a stateful one included) applied in the verify
step, and to transformers 5.24 at batch 1. Sampling: chi-square tests that
the tokens are distributed as the target's processed distribution.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
import torch
from _generation_helpers import PAD, VOCAB, left_padded, tiny_llama
from lk_cooldown import Cooldown, HistoryHash, HistoryList
from scipy.stats import chi2

import logitkit
from logitkit import Pipeline
from logitkit.errors import ConfigError
from logitkit.registry import build_registry

REG = build_registry(env={})
MODES = ["prompt_lookup", "assisted", "early_exit"]
OPTIONS: dict[str, dict[str, Any]] = {
    "prompt_lookup": {"num_tokens": 4, "max_ngram": 2},
    "assisted": {"num_assistant_tokens": 3},
    "early_exit": {"assistant_early_exit": 1, "num_assistant_tokens": 3},
}


def _repetitive(rows: int, width: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompts that repeat a short pattern, so prompt lookup finds matches."""
    ids, mask = left_padded([width - 2 * r for r in range(rows)], seed=3)
    for r in range(rows):
        n = width - 2 * r
        pattern = ids[r, width - n : width - n + 3]
        ids[r, width - n :] = pattern.repeat(n // 3 + 1)[:n]
    return ids, mask


def _spec(model: Any, ids: torch.Tensor, mask: torch.Tensor, pipe: Any, mode: str, **kw: Any) -> torch.Tensor:
    out = logitkit.generate(
        model, ids, pipe, attention_mask=mask, pad_token_id=PAD, eos_token_id=[],
        search=mode, search_options=OPTIONS[mode], max_new_tokens=14, **kw,
    )  # fmt: skip
    return out.sequences


def _greedy(model: Any, ids: torch.Tensor, mask: torch.Tensor, pipe: Any) -> torch.Tensor:
    out = logitkit.generate(model, ids, pipe, attention_mask=mask, pad_token_id=PAD, eos_token_id=[], max_new_tokens=14)
    return out.sequences


@pytest.fixture(scope="module")
def target() -> Any:
    return tiny_llama(seed=0)


@pytest.fixture(scope="module")
def assistant() -> Any:
    return tiny_llama(seed=5)


def _pipelines() -> list[Any]:
    greedy = REG.selectors["greedy"].cls()
    return [
        None,
        {"processors": [{"repetition_penalty": 1.3}, {"no_repeat_ngram_size": 3}]},
        Pipeline([Cooldown(Cooldown.Config(steps=2)), HistoryHash()], greedy),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("rows", [1, 4])
@pytest.mark.parametrize("which", range(3))
def test_greedy_speculation_equals_plain_greedy(
    target: Any, assistant: Any, mode: str, rows: int, which: int, caplog: pytest.LogCaptureFixture
) -> None:
    pipe = _pipelines()[which]
    ids, mask = _repetitive(rows)
    with caplog.at_level(logging.DEBUG, logger="logitkit.speculative"):
        got = _spec(target, ids, mask, pipe, mode, assistant_model=assistant)
    assert torch.equal(got, _greedy(target, ids, mask, pipe))
    rounds, drafted, _ = map(int, re.findall(r"(\d+) rounds, (\d+) drafted, (\d+) kept", caplog.text)[-1])
    assert drafted > 0 and rounds < 14 + 1  # drafts were proposed and verified


def test_stateful_processor_sees_its_history_in_the_verify_step(target: Any) -> None:
    checker = HistoryHash()
    pipe = Pipeline([Cooldown(Cooldown.Config(steps=2)), checker], REG.selectors["greedy"].cls())
    ids, mask = _repetitive(4)
    state_seen: list[bool] = []
    original = checker.apply

    def spy(scores: torch.Tensor, ctx: Any) -> torch.Tensor:
        out = original(scores, ctx)
        state = ctx.row_state(checker)
        assert state is not None
        from lk_cooldown import history_hash

        state_seen.append(bool(torch.equal(state["hash"], history_hash(ctx.input_ids))))
        return out

    object.__setattr__(checker, "apply", spy)
    _spec(target, ids, mask, pipe, "prompt_lookup")
    assert state_seen and all(state_seen)


def test_a_fork_advances_without_touching_the_state_it_came_from() -> None:
    cooldown, listed = Cooldown(Cooldown.Config(steps=2)), HistoryList()
    state = Pipeline([cooldown, listed], REG.selectors["greedy"].cls()).start(torch.tensor([[4, 5], [6, 7]]))
    fork = state.fork()
    fork.accept(torch.tensor([8, 9]))
    assert fork.steps.tolist() == [1, 1] and state.steps.tolist() == [0, 0]
    assert fork.row_state(listed)["tokens"] == [[4, 5, 8], [6, 7, 9]]  # type: ignore[index]
    assert state.row_state(listed)["tokens"] == [[4, 5], [6, 7]]  # type: ignore[index]
    assert state.row_state(cooldown)["recent"].tolist() == [[-1, -1], [-1, -1]]  # type: ignore[index]
    # Greedy speculation with a list-valued row state keeps plain greedy's tokens and the state's own history.
    pipe = Pipeline([listed], REG.selectors["greedy"].cls())
    ids, mask = _repetitive(4)
    model = tiny_llama(seed=0)
    assert torch.equal(_spec(model, ids, mask, pipe, "prompt_lookup"), _greedy(model, ids, mask, pipe))
    assert listed.checks and all(listed.checks)


def _prompt_lookup_prompt() -> torch.Tensor:
    return torch.tensor([[5, 17, 33, 41, 5, 17, 33, 41, 5, 17]])


@pytest.mark.parametrize("penalty", [None, 1.4])
def test_prompt_lookup_matches_transformers_live(target: Any, penalty: float | None) -> None:
    ids = _prompt_lookup_prompt()
    expected = target.generate(
        ids, do_sample=False, max_new_tokens=14, prompt_lookup_num_tokens=4, max_matching_ngram_size=2,
        pad_token_id=PAD, eos_token_id=None, repetition_penalty=penalty,
    )  # fmt: skip
    pipe = {"processors": [{"repetition_penalty": penalty}]} if penalty else None
    got = logitkit.generate(
        target, ids, pipe, search="prompt_lookup", search_options={"num_tokens": 4, "max_ngram": 2},
        max_new_tokens=14, pad_token_id=PAD, eos_token_id=[],
    ).sequences  # fmt: skip
    assert torch.equal(got, expected)


def test_assisted_and_early_exit_match_transformers_live(target: Any, assistant: Any) -> None:
    ids = _prompt_lookup_prompt()
    kw: dict[str, Any] = {"do_sample": False, "max_new_tokens": 14, "pad_token_id": PAD, "eos_token_id": None}
    assistant.generation_config.num_assistant_tokens = 3
    assistant.generation_config.num_assistant_tokens_schedule = "constant"
    expected = target.generate(ids, assistant_model=assistant, **kw)
    got = logitkit.generate(
        target, ids, search="assisted", assistant_model=assistant, max_new_tokens=14, pad_token_id=PAD, eos_token_id=[]
    ).sequences
    assert torch.equal(got, expected)
    expected = target.generate(ids, assistant_early_exit=1, **kw)
    got = logitkit.generate(
        target, ids, search="early_exit", search_options={"assistant_early_exit": 1},
        max_new_tokens=14, pad_token_id=PAD, eos_token_id=[],
    ).sequences  # fmt: skip
    assert torch.equal(got, expected)


@pytest.mark.parametrize("schedule", ["heuristic", "heuristic_transient", "constant"])
def test_schedules_read_and_write_the_assistants_generation_config(
    target: Any, schedule: str, caplog: pytest.LogCaptureFixture
) -> None:
    helper = tiny_llama(seed=5)
    helper.generation_config.num_assistant_tokens = 5
    helper.generation_config.num_assistant_tokens_schedule = schedule
    ids, mask = _repetitive(1)
    kw: dict[str, Any] = {"max_new_tokens": 14, "pad_token_id": PAD, "eos_token_id": []}
    out = logitkit.generate(target, ids, search="assisted", assistant_model=helper, attention_mask=mask, **kw)
    assert torch.equal(out.sequences, _greedy(target, ids, mask, None))
    # transformers: heuristic keeps the adapted value on the assistant; the others leave it.
    after = helper.generation_config.num_assistant_tokens
    assert (after != 5) if schedule == "heuristic" else (after == 5)


def test_confidence_threshold_one_drafts_a_single_token_per_round(
    target: Any, assistant: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ids, mask = _repetitive(1)
    with caplog.at_level(logging.DEBUG, logger="logitkit.speculative"):
        logitkit.generate(
            target, ids, search="assisted", assistant_model=assistant, attention_mask=mask,
            search_options={"num_assistant_tokens": 6, "assistant_confidence_threshold": 1.0},
            max_new_tokens=10, pad_token_id=PAD, eos_token_id=[],
        )  # fmt: skip
    rounds, drafted, _ = map(int, re.findall(r"(\d+) rounds, (\d+) drafted, (\d+) kept", caplog.text)[-1])
    assert drafted <= rounds  # a random assistant is never fully confident: one draft, then it stops


def test_bad_options_and_missing_assistant_are_named(target: Any) -> None:
    ids = _prompt_lookup_prompt()
    with pytest.raises(ConfigError, match=r"generation.search_options.num_tokens"):
        logitkit.generate(target, ids, search="prompt_lookup", search_options={"num_tokens": 0}, max_new_tokens=3)
    with pytest.raises(ValueError, match="assistant_model="):
        logitkit.generate(target, ids, search="assisted", max_new_tokens=3)
    with pytest.raises(ValueError, match="below the model's 2 layers"):
        logitkit.generate(target, ids, search="early_exit", search_options={"assistant_early_exit": 2}, max_new_tokens=3)
    with pytest.raises(ValueError, match="mirostat"):
        logitkit.generate(target, ids, {"selector": "mirostat"}, search="prompt_lookup", max_new_tokens=3)


# -- universal assisted decoding: two tokenizers built here ------------------------------

TEXTS = ["def add(a, b): return a + b", "for item in items: print(item)", "class Point: pass"] * 4


def _tokenizer(kind: str) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if kind == "bpe":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer: Any = trainers.BpeTrainer(
            vocab_size=VOCAB + 200, special_tokens=["<pad>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
    else:
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=VOCAB + 100, special_tokens=["[PAD]", "[UNK]"])
    tok.train_from_iterator(TEXTS, trainer=trainer)
    return tok


class _TextModel:
    """A callable 'model' over a tokenizer that predicts the next token of a fixed text, as one-hot logits."""

    def __init__(self, tokenizer: Any, text: str, vocab: int) -> None:
        self.tokenizer, self.vocab = tokenizer, vocab
        self.ids = tokenizer.encode(text, add_special_tokens=False).ids

    def _next(self, row: list[int]) -> int:
        for n in range(len(self.ids) - 1, 0, -1):  # the longest suffix of the row that is a prefix of the text
            if row[-n:] == self.ids[:n]:
                return int(self.ids[n])
        return 3

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(input_ids.shape[0], input_ids.shape[1], self.vocab)
        for r in range(input_ids.shape[0]):
            row = input_ids[r].tolist()
            for end in range(1, len(row) + 1):  # every position's prediction, as a causal LM gives
                logits[r, end - 1, self._next(row[:end])] = 8.0
        return logits


def test_universal_assisted_drafts_across_tokenizers_and_keeps_greedy(
    target: Any, caplog: pytest.LogCaptureFixture
) -> None:
    target_tok, assistant_tok = _tokenizer("bpe"), _tokenizer("wordpiece")
    assert target_tok.get_vocab() != assistant_tok.get_vocab()
    text = "for item in items: print(item)"
    target_model = _TextModel(target_tok, text, target_tok.get_vocab_size())
    helper = _TextModel(assistant_tok, text, assistant_tok.get_vocab_size())
    prompt = torch.tensor([target_tok.encode("for item", add_special_tokens=False).ids] * 2)
    kw: dict[str, Any] = {"max_new_tokens": 8, "pad_token_id": 0, "eos_token_id": []}
    plain = logitkit.generate(target_model, prompt, **kw).sequences
    with caplog.at_level(logging.DEBUG, logger="logitkit.speculative"):
        got = logitkit.generate(
            target_model, prompt, search="universal_assisted", tokenizer=target_tok,
            assistant_model=helper, assistant_tokenizer=assistant_tok,
            search_options={"num_assistant_tokens": 4, "assistant_lookbehind": 3, "target_lookbehind": 3}, **kw,
        ).sequences  # fmt: skip
    assert torch.equal(got, plain)
    rounds, _drafted, kept = map(int, re.findall(r"(\d+) rounds, (\d+) drafted, (\d+) kept", caplog.text)[-1])
    assert kept > 0 and rounds < 8  # the assistant's text, re-encoded, was accepted several tokens at a time


def test_universal_assisted_on_tiny_llamas_keeps_greedy(target: Any) -> None:
    target_tok, assistant_tok = _tokenizer("bpe"), _tokenizer("wordpiece")
    helper = tiny_llama(vocab=assistant_tok.get_vocab_size(), seed=2)
    big = tiny_llama(vocab=target_tok.get_vocab_size(), seed=0)
    ids = torch.tensor([target_tok.encode("def add(a, b):", add_special_tokens=False).ids])
    kw: dict[str, Any] = {"max_new_tokens": 10, "pad_token_id": 0, "eos_token_id": []}
    got = logitkit.generate(
        big, ids, search="universal_assisted", tokenizer=target_tok, assistant_model=helper,
        assistant_tokenizer=assistant_tok, **kw,
    ).sequences  # fmt: skip
    assert torch.equal(got, logitkit.generate(big, ids, **kw).sequences)
    # transformers 5.24 runs universal assisted decoding at batch 1, with its own tokenizer wrappers.
    from transformers import PreTrainedTokenizerFast

    expected = big.generate(
        ids, assistant_model=helper, do_sample=False, max_new_tokens=10, pad_token_id=0, eos_token_id=None,
        tokenizer=PreTrainedTokenizerFast(tokenizer_object=target_tok, pad_token="<pad>"),
        assistant_tokenizer=PreTrainedTokenizerFast(tokenizer_object=assistant_tok, pad_token="[PAD]"),
    )  # fmt: skip
    assert torch.equal(got, expected)


# -- sampling keeps the target's distribution ----------------------------------------------

V = 4
TARGET_TABLE = torch.tensor([[2.0, 0.5, -1.0, 0.3], [0.1, 1.5, 0.2, -0.5], [-0.3, 0.4, 1.2, 0.9], [1.0, -1.0, 0.0, 0.6]])
DRAFT_TABLE = torch.tensor([[0.0, 1.0, 0.5, 0.0], [1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, -1.0], [0.0, 0.0, 2.0, 0.0]])


class _Markov:
    """A callable model whose next-token logits depend on the last token only."""

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.table[input_ids]  # [rows, length, vocab]


def _expected(processors: list[dict[str, Any]], steps: int, start: int) -> torch.Tensor:
    """The target's exact distribution over the ``steps``-token continuations, after the processors."""
    pipe = Pipeline.from_config({"processors": processors}) if processors else None
    probs = torch.zeros(V**steps)
    for index in range(V**steps):
        tokens = [(index // V ** (steps - 1 - i)) % V for i in range(steps)]
        history, p = [start], 1.0
        for token in tokens:
            logits = TARGET_TABLE[history[-1]][None]
            scores = pipe(torch.tensor([history]), logits) if pipe is not None else logits
            p *= float(torch.softmax(scores, dim=-1)[0, token])
            history.append(token)
        probs[index] = p
    return probs


@pytest.mark.parametrize(
    ("mode", "processors", "rows", "steps"),
    [
        ("assisted", [], 1, 2),
        ("assisted", [{"temperature": 0.7}, {"top_k": 3}], 16, 3),
        ("assisted", [], 64, 3),
        ("prompt_lookup", [{"temperature": 1.3}], 1, 2),
    ],
)
def test_speculative_sampling_keeps_the_target_distribution(
    mode: str, processors: list[dict[str, Any]], rows: int, steps: int
) -> None:
    start = 1
    draws = 1000 if rows == 1 else 3000
    pipe = Pipeline.from_config({"processors": processors, "selector": "multinomial"})
    prompt = torch.tensor([[start, 2, 1, 2, 1, 0, 3, start]])
    options = {"num_assistant_tokens": 3, "assistant_confidence_threshold": 0.0} if mode == "assisted" else {}
    counts = torch.zeros(V**steps)
    torch.manual_seed(1234)
    for _ in range(draws // rows):
        out = logitkit.generate(
            _Markov(TARGET_TABLE), prompt.repeat(rows, 1), pipe, search=mode, search_options=options,
            assistant_model=_Markov(DRAFT_TABLE), max_new_tokens=steps, eos_token_id=[], pad_token_id=0,
        )  # fmt: skip
        new = out.new_tokens
        index = sum(new[:, i] * V ** (steps - 1 - i) for i in range(steps))
        counts += torch.bincount(index, minlength=V**steps).float()
    expected = _expected(processors, steps, start) * counts.sum()
    seen = expected > 0
    assert counts[~seen].sum() == 0  # nothing the processors forbid was ever emitted
    # Pool the rare outcomes so every cell expects at least 5 (the test's usual validity rule).
    order = torch.argsort(expected[seen])
    e, c = expected[seen][order], counts[seen][order]
    small = e < 5
    pooled_e = torch.cat([e[small].sum()[None], e[~small]]) if small.any() else e
    pooled_c = torch.cat([c[small].sum()[None], c[~small]]) if small.any() else c
    statistic = float(((pooled_c - pooled_e) ** 2 / pooled_e).sum())
    critical = float(chi2.ppf(0.999, df=len(pooled_e) - 1))
    assert statistic < critical, (statistic, critical)


def test_a_biased_acceptance_rule_fails_the_chi_square(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test above can fail: accepting every draft (drafts from q) is caught."""
    from logitkit_builtins import _verify

    def accept_all(probs: torch.Tensor, draft: Any, generator: Any) -> Any:
        verdict = original(probs, draft, generator)
        k = draft.tokens.shape[1]
        if k:
            verdict.tokens[:, :k] = draft.tokens
            verdict.accepted = draft.lengths.clone()
        return verdict

    original = _verify.sampled
    monkeypatch.setattr(_verify, "sampled", accept_all)
    with pytest.raises(AssertionError):
        test_speculative_sampling_keeps_the_target_distribution("assisted", [], 64, 3)


# -- generation config fields ----------------------------------------------------------------


def test_generation_config_fields_map_to_the_searches_and_match_transformers(target: Any) -> None:
    from transformers import GenerationConfig

    from logitkit.formats.speculative import FIELDS, assisted_options, speculative_generation

    ids = _prompt_lookup_prompt()
    for fields in ({"prompt_lookup_num_tokens": 4, "max_matching_ngram_size": 2}, {"assistant_early_exit": 1}):
        gc = GenerationConfig(do_sample=False, max_new_tokens=14, pad_token_id=PAD, **fields)
        generation = speculative_generation(gc.to_dict())
        assert generation["search"] in {"prompt_lookup", "early_exit"}
        got = logitkit.generate(target, ids, max_new_tokens=14, pad_token_id=PAD, eos_token_id=[], **generation)
        assert torch.equal(got.sequences, target.generate(ids, generation_config=gc, eos_token_id=None))
    # Every speculative field 5.24 has is accounted for.
    assert {f for f in GenerationConfig().to_dict() if "assistant" in f or "lookup" in f or "lookbehind" in f
            or f == "max_matching_ngram_size"} <= FIELDS | {"assistant_ensemble_weight", "is_assistant"}  # fmt: skip
    assert speculative_generation({"num_assistant_tokens": 5}) == {}  # read from the assistant, at generate()
    assert assisted_options({"assistant_lookbehind": 4, "target_lookbehind": 6}, universal=True) == {
        "assistant_lookbehind": 4, "target_lookbehind": 6,
    }  # fmt: skip


def test_an_assistant_model_alone_picks_assisted_decoding(
    target: Any, assistant: Any, caplog: pytest.LogCaptureFixture
) -> None:
    ids, mask = _repetitive(2)
    with caplog.at_level(logging.DEBUG, logger="logitkit.speculative"):
        out = logitkit.generate(
            target, ids, attention_mask=mask, assistant_model=assistant, max_new_tokens=8, pad_token_id=PAD, eos_token_id=[]
        )
    assert "rounds" in caplog.text
    assert torch.equal(out.sequences, logitkit.generate(
        target, ids, attention_mask=mask, max_new_tokens=8, pad_token_id=PAD, eos_token_id=[]).sequences)  # fmt: skip


def test_universal_assisted_left_padded_batch_of_4_keeps_greedy() -> None:
    target_tok, assistant_tok = _tokenizer("bpe"), _tokenizer("wordpiece")
    helper = tiny_llama(vocab=assistant_tok.get_vocab_size(), seed=2)
    big = tiny_llama(vocab=target_tok.get_vocab_size(), seed=0)
    rows = [target_tok.encode(t, add_special_tokens=False).ids for t in ("def add(a, b):", "for item in", "class", "print(item)")]
    width = max(len(r) for r in rows)
    ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    kw: dict[str, Any] = {"max_new_tokens": 10, "pad_token_id": 0, "eos_token_id": [], "attention_mask": mask}
    got = logitkit.generate(
        big, ids, tokenizer=target_tok, assistant_model=helper, assistant_tokenizer=assistant_tok, **kw
    ).sequences
    assert torch.equal(got, logitkit.generate(big, ids, **kw).sequences)


@pytest.mark.parametrize("mode", MODES)
def test_seeded_speculative_sampling_repeats_and_follows_the_seed(target: Any, assistant: Any, mode: str) -> None:
    ids, mask = _repetitive(4)
    pipe = {"processors": [{"temperature": 1.5}], "selector": "sample"}

    def run(seed: int) -> torch.Tensor:
        return _spec(target, ids, mask, pipe, mode, assistant_model=assistant, seed=seed)

    first = run(7)
    assert torch.equal(first, run(7))  # the seed setting seeds the acceptance draws
    assert not torch.equal(first, run(8))
    assert torch.equal(first[:, : ids.shape[1]], ids)
