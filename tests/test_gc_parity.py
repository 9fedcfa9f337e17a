"""Every row of the GenerationConfig table, token for token against live transformers.

One differential test, parametrized over ``CASES``: each row of the table in
docs/generation-config.md that says "live" names its case here. The same
``GenerationConfig`` goes to ``model.generate(ids, generation_config=gc)`` and
to ``logitkit.generate(model, ids, generation_config=gc)``, under the same
``torch.manual_seed``, on a tiny random Llama and a tiny random T5, with a
left-padded batch. No setting is repeated as a keyword: only the attention
mask (and a tokenizer, where the row needs one) is passed besides the config.
"""

from __future__ import annotations

import re
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from _generation_helpers import (
    PAD,
    bpe_tokenizer,
    frequent_tokens,
    left_padded,
    tiny_llama,
    tiny_t5,
)
from transformers import GenerationConfig

import logitkit
from logitkit.errors import ConfigError

DOCS = Path(__file__).resolve().parents[1] / "docs" / "generation-config.md"


@dataclass(frozen=True)
class Case:
    #: GenerationConfig fields; "EOS" stands for the model's two most frequent greedy tokens.
    fields: dict[str, Any]
    models: tuple[str, ...] = ("llama", "t5")
    lengths: tuple[int, ...] = (5, 7, 3, 7)
    seed: int = 0
    #: Also compare these output fields (scores, logits, sequences_scores).
    compare: tuple[str, ...] = ()
    #: A check that the case is not vacuous: the row changes the tokens of plain greedy/sampling.
    changes_tokens: bool = True
    #: The config whose tokens must differ (default: the case without its row's own fields).
    baseline: dict[str, Any] | None = None
    #: Models on which the row changes nothing in transformers either (the vacuity check is skipped there).
    inert_on: tuple[str, ...] = ()
    #: How many of the model's frequent tokens are eos ids.
    eos_count: int = 2
    #: Seconds a fake clock (in both libraries) advances per call of the model's head: a deterministic max_time.
    tick: float | None = None
    #: The number of steps the fake clock allows (checked, so the clock is known to do the stopping).
    steps: int | None = None
    #: A refusal row: transformers raises too, and logitkit's ConfigError matches this pattern (what it names).
    refused: str | None = None
    #: Text prompts, tokenized (left-padded) by the healing tokenizer, instead of random ids of ``lengths``.
    texts: tuple[str, ...] = ()


SAMPLE = {"do_sample": True, "max_new_tokens": 12}
BEAM = {"num_beams": 3, "max_new_tokens": 10}

#: Table row -> its case. A new row in the docs table is a new entry here.
CASES: dict[str, Case] = {
    "do_sample=false (greedy)": Case({"max_new_tokens": 12}, changes_tokens=False),
    "do_sample=true (multinomial)": Case({**SAMPLE, "top_k": 0}, seed=3),
    "do_sample=true, implicit top_k=50": Case(SAMPLE, seed=4, baseline={**SAMPLE, "top_k": 0}),
    "max_new_tokens": Case({"max_new_tokens": 5}, baseline={}),
    "max_length": Case({"max_length": 14}),
    "max_new_tokens and max_length": Case({"max_new_tokens": 9, "max_length": 11}, baseline={"max_length": 11}),
    "default length (20 new tokens)": Case({}, changes_tokens=False),
    "default length, prompt of 20+ tokens": Case({}, lengths=(24, 21), changes_tokens=False),
    "max_time": Case({"max_time": 1e-9, "max_new_tokens": 10}),
    # One model call per step, 1 s each on the fake clock: both stop after the 4th step (4 s > 3.5 s).
    "max_time, after several steps": Case({"max_time": 3.5, "max_new_tokens": 10}, tick=1.0, steps=4),
    "max_time, beams": Case({**BEAM, "max_time": 5.5}, tick=1.0, steps=6, baseline=BEAM),
    "max_time, sampling": Case({**SAMPLE, "max_time": 2.5}, tick=1.0, steps=3, seed=21, baseline=SAMPLE),
    "num_return_sequences": Case({**SAMPLE, "num_return_sequences": 3}, seed=5),
    "num_beams (beam search)": Case({**BEAM, "output_scores": True, "return_dict_in_generate": True},
                                    compare=("sequences_scores",), baseline={"max_new_tokens": 10}),
    "early_stopping=true": Case({"num_beams": 2, "max_new_tokens": 16, "early_stopping": True}, models=("llama",),
                                baseline={"num_beams": 2, "max_new_tokens": 16, "early_stopping": False}),
    "early_stopping=true (T5)": Case({"num_beams": 4, "max_new_tokens": 10, "early_stopping": True}, models=("t5",),
                                     eos_count=3, baseline={"num_beams": 4, "max_new_tokens": 10}),
    "early_stopping=false": Case({**BEAM, "early_stopping": False, "length_penalty": 0.5}, changes_tokens=False),
    "early_stopping=never": Case({"num_beams": 2, "max_new_tokens": 10, "early_stopping": "never"}, inert_on=("llama",),
                                 baseline={"num_beams": 2, "max_new_tokens": 10}),
    "length_penalty": Case({**BEAM, "length_penalty": -1.0}),
    "num_return_sequences (beams)": Case({**BEAM, "num_return_sequences": 2}),
    "do_sample with num_beams (beam sampling)": Case({**BEAM, "do_sample": True}, seed=6, baseline=BEAM),
    "beam sampling, early_stopping=true": Case({**BEAM, "do_sample": True, "early_stopping": True, "temperature": 1.5},
                                               seed=7, baseline={**BEAM, "early_stopping": True}),
    "beam sampling, early_stopping=never": Case({**BEAM, "do_sample": True, "early_stopping": "never", "top_p": 0.9},
                                                seed=8, baseline={**BEAM, "early_stopping": "never"}),
    "output_scores": Case({**SAMPLE, "output_scores": True, "return_dict_in_generate": True}, seed=9, compare=("scores",), changes_tokens=False),
    "output_logits": Case({**BEAM, "output_logits": True, "output_scores": True, "return_dict_in_generate": True}, compare=("scores", "logits"), changes_tokens=False),
    "return_dict_in_generate": Case({"max_new_tokens": 6, "return_dict_in_generate": True}, changes_tokens=False),
    "temperature": Case({**SAMPLE, "temperature": 0.6}, seed=10),
    "top_k": Case({**SAMPLE, "top_k": 5}, seed=11),
    "top_p": Case({**SAMPLE, "top_p": 0.8}, seed=12),
    "min_p": Case({**SAMPLE, "min_p": 0.05}, seed=13, inert_on=("llama",)),
    "typical_p": Case({**SAMPLE, "typical_p": 0.7}, seed=14),
    "epsilon_cutoff": Case({**SAMPLE, "epsilon_cutoff": 0.02}, seed=13),
    "eta_cutoff": Case({**SAMPLE, "eta_cutoff": 0.01}, seed=13, inert_on=("llama",)),
    "top_h": Case({**SAMPLE, "top_h": 0.4}, seed=13),
    "repetition_penalty": Case({"max_new_tokens": 12, "repetition_penalty": 2.0}),
    "encoder_repetition_penalty": Case({"max_new_tokens": 12, "encoder_repetition_penalty": 3.0}),
    "no_repeat_ngram_size": Case({"max_new_tokens": 14, "no_repeat_ngram_size": 1}),
    "encoder_no_repeat_ngram_size": Case({"max_new_tokens": 12, "encoder_no_repeat_ngram_size": 1}, inert_on=("t5",)),
    "bad_words_ids": Case({"max_new_tokens": 12, "bad_words_ids": "FIRST"}),
    "sequence_bias": Case({"max_new_tokens": 12, "sequence_bias": "FIRST"}),
    "min_length": Case({"max_new_tokens": 12, "min_length": 10}),
    "min_new_tokens": Case({"max_new_tokens": 12, "min_new_tokens": 6}),
    # transformers forces bos only at length 1: a decoder-only prompt is longer.
    "forced_bos_token_id": Case({"max_new_tokens": 8, "forced_bos_token_id": 9}, inert_on=("llama",)),
    "forced_eos_token_id": Case({"max_new_tokens": 8, "forced_eos_token_id": 9}),
    "remove_invalid_values": Case({**SAMPLE, "remove_invalid_values": True, "top_k": 10}, seed=18, changes_tokens=False),
    "exponential_decay_length_penalty": Case({"max_new_tokens": 14, "exponential_decay_length_penalty": [2, 3.0]}),
    "suppress_tokens": Case({"max_new_tokens": 12, "suppress_tokens": "FREQUENT"}),
    "begin_suppress_tokens": Case({"max_new_tokens": 12, "begin_suppress_tokens": "FREQUENT"}),
    "renormalize_logits": Case({**SAMPLE, "renormalize_logits": True, "output_scores": True, "return_dict_in_generate": True}, seed=19, compare=("scores",), changes_tokens=False),
    "guidance_scale": Case({"max_new_tokens": 10, "guidance_scale": 3.0}, models=("llama",)),
    "guidance_scale on an encoder-decoder (refused)": Case({"max_new_tokens": 10, "guidance_scale": 3.0}, models=("t5",),
                                                           changes_tokens=False, refused="guidance_scale: .*decoder-only"),
    "watermarking_config": Case({**SAMPLE, "watermarking_config": {"greenlist_ratio": 0.5, "bias": 6.0, "context_width": 2}}, seed=20),
    # A Llama over the trained byte-level BPE tokenizer's vocabulary, which the stop strings need.
    "stop_strings": Case({"max_new_tokens": 12, "stop_strings": "PRODUCED"}, models=("llama_bpe", "t5_bpe"),
                         baseline={"max_new_tokens": 12}),
    # transformers' heal_tokens re-tokenizes the decoded prompts, so they are text; "st" is a one-token prompt.
    "token_healing": Case({"max_new_tokens": 6, "token_healing": True}, models=("llama_heal",),
                          texts=("full st", "hello wor", "st", "the lazy d", "stop here. ST")),
    "token_healing, beams": Case({"max_new_tokens": 6, "num_beams": 2, "token_healing": True}, models=("llama_heal",),
                                 texts=("full st", "hello wor", "st"), baseline={"max_new_tokens": 6, "num_beams": 2}),
    "token_healing on an encoder-decoder (refused)": Case({"max_new_tokens": 6, "token_healing": True}, models=("t5_heal",),
                                                          texts=("full st", "hello wor"), changes_tokens=False,
                                                          refused="token_healing: applies to decoder-only models"),
    "eos_token_id": Case({"max_new_tokens": 12}, baseline={"max_new_tokens": 12, "eos_token_id": [95]}),
    "pad_token_id": Case({"max_new_tokens": 12, "pad_token_id": 5}, changes_tokens=False),
    # Model calls: the same tokens by another route through the model.
    "use_cache=false": Case({"max_new_tokens": 10, "use_cache": False}, changes_tokens=False),
    "cache_implementation=static": Case({"max_new_tokens": 10, "cache_implementation": "static"}, changes_tokens=False),
    "cache_implementation=static, beams": Case({**BEAM, "cache_implementation": "static"}, changes_tokens=False),
    "cache_implementation=sliding_window": Case({"max_new_tokens": 10, "cache_implementation": "sliding_window"}, changes_tokens=False),
    "max_cache_len": Case({"max_new_tokens": 8, "cache_implementation": "static", "max_cache_len": 64}, changes_tokens=False),
    "disable_compile": Case({"max_new_tokens": 8, "cache_implementation": "static", "disable_compile": True}, changes_tokens=False),
    # 5.24 reads cache_config only for a quantized cache: a static one takes its size, a dynamic one nothing.
    "cache_config, static cache": Case({"max_new_tokens": 8, "cache_implementation": "static", "cache_config": {"max_cache_len": 64}}, changes_tokens=False),
    "cache_config, dynamic cache (ignored)": Case({"max_new_tokens": 8, "cache_config": {"max_cache_len": 64, "nbits": 4}}, changes_tokens=False),
    # On CPU 5.24 compiles only with _compile_all_devices; the decisions are spied on in test_generate_model_options.
    "compile_config": Case({"max_new_tokens": 8, "cache_implementation": "static", "compile_config": {"fullgraph": False, "dynamic": True}}, changes_tokens=False),
    "cache_implementation=quantized (refused)": Case({"max_new_tokens": 4, "cache_implementation": "quantized"}, changes_tokens=False,
                                                     refused=r"optimum-quanto|decoder-only models only"),
    "cache_implementation=quantized, hqq (refused)": Case({"max_new_tokens": 4, "cache_implementation": "quantized", "cache_config": {"backend": "hqq"}},
                                                          changes_tokens=False, refused=r"needs hqq|decoder-only models only"),
    "cache_implementation=offloaded (refused)": Case({"max_new_tokens": 4, "cache_implementation": "offloaded"}, changes_tokens=False, refused="needs CUDA"),
    "cache_implementation=offloaded_static (refused)": Case({"max_new_tokens": 4, "cache_implementation": "offloaded_static"}, changes_tokens=False,
                                                            refused="needs CUDA"),
    "output_attentions and output_hidden_states": Case({"max_new_tokens": 8, "output_attentions": True, "output_hidden_states": True, "return_dict_in_generate": True}, changes_tokens=False),
    "decoder_start_token_id, one per row": Case({"max_new_tokens": 8, "decoder_start_token_id": [0, 5, 9, 0]}, models=("t5",)),
}  # fmt: skip


@pytest.fixture(scope="module")
def models() -> dict[str, Any]:
    bpe = bpe_tokenizer().get_vocab_size()  # a T5 seed whose greedy text holds letter pairs for stop strings
    return {"llama": tiny_llama(), "t5": tiny_t5(), "llama_bpe": tiny_llama(vocab=bpe), "t5_bpe": tiny_t5(vocab=bpe, seed=5),
            "llama_heal": healing_llama(), "t5_heal": tiny_t5(vocab=len(healing_tokenizer()))}  # fmt: skip


def healing_tokenizer() -> Any:
    """The BPE tokenizer with a bos token (transformers' healing needs one) and left padding."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=bpe_tokenizer(), pad_token="<pad>", eos_token="<eos>",
                                   bos_token="<s>", padding_side="left")  # fmt: skip


def healing_llama() -> Any:
    """A Llama over the healing tokenizer, its head scaled so the logits spread over more than the +1 that
    transformers' healing gives the original tail: some tails then heal into a longer token."""
    model = tiny_llama(vocab=len(healing_tokenizer()))
    with torch.no_grad():
        model.lm_head.weight.mul_(30.0)
    return model


def hf_tokenizer() -> Any:
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=bpe_tokenizer(), pad_token="<pad>", eos_token="<eos>")


@pytest.fixture(scope="module")
def frequent(models: dict[str, Any]) -> dict[str, list[int]]:
    """Per model: its 3 most frequent greedy tokens, then the first non-eos token greedy emits."""
    ids, mask = left_padded([5, 7, 3, 7])
    found: dict[str, Any] = {}
    for name, model in models.items():
        if name in ("llama_bpe", "t5_bpe", "llama_heal", "t5_heal"):
            continue
        tokens = frequent_tokens(model, ids, mask, n=3)
        out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=8, pad_token_id=PAD,
                             eos_token_id=tokens[:2])  # fmt: skip
        new = out[:, -8:] if not model.config.is_encoder_decoder else out[:, 1:]
        first = next(int(t) for t in new.T.flatten() if int(t) not in tokens[:2] and int(t) != PAD)
        found[name] = [*tokens, first]
    found["llama_bpe"] = produced_stop_strings(models["llama_bpe"])
    found["t5_bpe"] = produced_stop_strings(models["t5_bpe"])
    found["llama_heal"] = found["t5_heal"] = [1, 1, 1, 1]  # eos <eos>, never the healing step's pad
    return found


def produced_stop_strings(model: Any) -> list[Any]:
    """eos ids [1, 2] (never emitted: the stop strings must do the stopping), then strings the model writes."""
    ids, mask = left_padded([5, 7, 3, 7], vocab=model.config.vocab_size)
    out = model.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=12, pad_token_id=PAD,
                         eos_token_id=[1])  # fmt: skip
    tok = hf_tokenizer()
    new = out[:, 1:] if model.config.is_encoder_decoder else out[:, 7:]
    stops = sorted({m[0] for row in new for m in [re.findall(r"[a-z]{2}", tok.decode(row))] if m})
    return [1, 1, 1, 1, stops]


def config_for(case: Case, frequent: list[int]) -> GenerationConfig:
    """The case's GenerationConfig: eos and pad set, the model's frequent tokens filled in."""
    fields: dict[str, Any] = {"eos_token_id": frequent[: case.eos_count], "pad_token_id": PAD, **case.fields}
    top, first = frequent[2], frequent[3]
    if fields.get("bad_words_ids") == "FIRST":
        fields["bad_words_ids"] = [[first]]
    if fields.get("sequence_bias") == "FIRST":
        fields["sequence_bias"] = [[[first], -4.0]]
    for name in ("suppress_tokens", "begin_suppress_tokens"):
        if fields.get(name) == "FREQUENT":
            fields[name] = [*frequent[:2], top]
    if fields.get("stop_strings") == "PRODUCED":
        fields["stop_strings"] = frequent[4]
    if "compile_config" in fields:
        from transformers import CompileConfig

        fields["compile_config"] = CompileConfig(**fields["compile_config"])
    if "watermarking_config" in fields:
        from transformers import WatermarkingConfig

        fields["watermarking_config"] = WatermarkingConfig(**fields["watermarking_config"])
    return GenerationConfig(**fields)


@contextmanager
def fake_clock(model: Any, tick: float | None) -> Iterator[None]:
    """Both libraries' max_time clocks read a counter that only the model's head advances, by ``tick`` a call."""
    if tick is None:
        yield
        return
    import transformers.generation.stopping_criteria as hf_stopping

    import logitkit.generation
    import logitkit_builtins.stopping

    now = [1000.0]
    clock = types.SimpleNamespace(time=lambda: now[0], monotonic=lambda: now[0])
    modules = (hf_stopping, logitkit.generation, logitkit_builtins.stopping)
    saved = [module.time for module in modules]
    hook = model.get_output_embeddings().register_forward_hook(lambda *_: now.__setitem__(0, now[0] + tick))
    for module in modules:
        module.time = clock  # type: ignore[attr-defined]
    try:
        yield
    finally:
        hook.remove()
        for module, original in zip(modules, saved, strict=True):
            module.time = original  # type: ignore[attr-defined]


def run_transformers(model: Any, ids: torch.Tensor, mask: torch.Tensor, gc: GenerationConfig, seed: int) -> Any:
    torch.manual_seed(seed)
    extra = {"tokenizer": hf_tokenizer()} if gc.stop_strings else {}
    if gc.token_healing:
        extra = {"tokenizer": healing_tokenizer()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.generate(ids, attention_mask=mask, generation_config=gc, **extra)


def run_logitkit(model: Any, ids: torch.Tensor, mask: torch.Tensor, gc: GenerationConfig, seed: int) -> Any:
    torch.manual_seed(seed)
    extra = {"tokenizer": bpe_tokenizer()} if gc.stop_strings else {}
    if gc.token_healing:
        extra = {"tokenizer": healing_tokenizer()}  # the same transformers tokenizer: healing re-tokenizes
    return logitkit.generate(model, ids, attention_mask=mask, generation_config=gc, **extra)


PARAMS = [pytest.param(row, name, id=f"{row}-{name}") for row, case in CASES.items() for name in case.models]


@pytest.mark.parametrize(("row", "model_name"), PARAMS)
def test_generation_config_row_matches_transformers(row: str, model_name: str, models: dict[str, Any],
                                                    frequent: dict[str, list[int]]) -> None:  # fmt: skip
    case = CASES[row]
    model = models[model_name]
    ids, mask = prompts_for(case, model)
    gc = config_for(case, frequent[model_name])
    if case.refused is not None:
        with pytest.raises(Exception):  # noqa: B017 - transformers' errors differ by cause (ImportError, AssertionError, ...)
            run_transformers(model, ids, mask, gc, case.seed)
        with pytest.raises(ConfigError, match=case.refused):
            run_logitkit(model, ids, mask, gc, case.seed)
        return
    with fake_clock(model, case.tick):
        ref = run_transformers(model, ids, mask, gc, case.seed)
    with fake_clock(model, case.tick):
        out = run_logitkit(model, ids, mask, gc, case.seed)
    ref_sequences = ref.sequences if hasattr(ref, "sequences") else ref
    assert torch.equal(out.sequences, ref_sequences), (out.sequences, ref_sequences)
    if case.steps is not None:
        start = 1 if model.config.is_encoder_decoder else ids.shape[-1]
        assert ref_sequences.shape[-1] - start == case.steps
    for name in case.compare:
        ours, theirs = getattr(out, name), getattr(ref, name)
        if isinstance(theirs, torch.Tensor):
            torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
        else:
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs, strict=True):
                torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    if case.changes_tokens and model_name not in case.inert_on:
        # Not vacuous: without the row's own fields the tokens differ.
        plain = case.baseline
        if plain is None:
            plain = {k: v for k, v in case.fields.items() if k in ("do_sample", "max_new_tokens", "num_beams")}
            plain = {"max_new_tokens": 12, **plain} if "max_new_tokens" not in case.fields else plain
        baseline = Case(plain, eos_count=case.eos_count)
        base = run_transformers(model, ids, mask, config_for(baseline, frequent[model_name]), case.seed)
        base_sequences = base.sequences if hasattr(base, "sequences") else base
        assert not torch.equal(base_sequences, ref_sequences), f"{row}: the case does not change the tokens"


def prompts_for(case: Case, model: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if not case.texts:
        return left_padded(list(case.lengths), vocab=model.config.vocab_size)
    encoded = healing_tokenizer()(list(case.texts), return_tensors="pt", padding=True)
    return encoded["input_ids"], encoded["attention_mask"]


def test_token_healing_case_heals_a_tail() -> None:
    """The healing row is not vacuous: transformers rewrites some prompt tails, not all of them."""
    case = CASES["token_healing"]
    model = healing_llama()
    ids, mask = prompts_for(case, model)
    gc = config_for(case, [1, 1, 1, 1])
    ref = run_transformers(model, ids, mask, gc, case.seed)
    changed = (ref[:, : ids.shape[1]] != ids).any(dim=1).tolist()
    assert any(changed) and not all(changed), changed


@pytest.mark.parametrize("make", [tiny_llama, tiny_t5], ids=["llama", "t5"])
@pytest.mark.parametrize("explicit", [{}, {"do_sample": False}, {"temperature": 0.5}], ids=["unset", "greedy", "cooler"])
def test_the_models_own_generation_config_fills_the_unset_fields(make: Any, explicit: dict[str, Any]) -> None:
    """transformers fills what the passed config leaves unset from model.generation_config; so does logitkit."""
    model = make()
    model.generation_config.update(do_sample=True, top_k=3, temperature=2.0)
    ids, mask = left_padded([5, 7, 3, 7], vocab=model.config.vocab_size)
    gc = GenerationConfig(max_new_tokens=8, pad_token_id=PAD, eos_token_id=[1], **explicit)
    ref = run_transformers(model, ids, mask, gc, seed=22)
    out = run_logitkit(model, ids, mask, gc, seed=22)
    assert torch.equal(out.sequences, ref)
    # Not vacuous: where the passed config leaves do_sample unset, the model's defaults make transformers sample.
    greedy = run_transformers(model, ids, mask, GenerationConfig(max_new_tokens=8, pad_token_id=PAD, eos_token_id=[1],
                                                                 do_sample=False), seed=22)  # fmt: skip
    assert torch.equal(greedy, ref) == (explicit.get("do_sample") is False)


def documented_rows() -> dict[str, str]:
    """Table rows of docs/generation-config.md: first cell -> the 'tested against' cell."""
    rows: dict[str, str] = {}
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and line.startswith("|") and not set(cells[0]) <= {"-", " ", ":"}:
            rows[cells[0].strip("`")] = cells[2]
    return rows


def test_every_live_row_of_the_docs_table_has_its_case() -> None:
    rows = documented_rows()
    cases = set()
    for cell in rows.values():
        cases.update(re.findall(r"case `([^`]+)`", cell))
    assert cases == set(CASES), (sorted(set(CASES) - cases), sorted(cases - set(CASES)))
