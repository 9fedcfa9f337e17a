"""Caches, compilation, extra outputs, model keywords, decoder starts and bos-only prompts, against transformers.

Differential tests: each case runs transformers 5.24's ``model.generate``
beside ``logitkit.generate`` on the same tiny seeded model (left-padded
batches where padding matters) and compares the token ids, and for the
``output_*`` settings the returned tensors.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from _generation_helpers import PAD, frequent_tokens, left_padded, tiny_gpt2, tiny_llama, tiny_t5
from transformers import CompileConfig, MistralConfig, MistralForCausalLM

import logitkit
from logitkit.errors import ConfigError


@pytest.fixture(scope="module")
def llama() -> Any:
    return tiny_llama()


@pytest.fixture(scope="module")
def t5() -> Any:
    return tiny_t5()


@pytest.fixture(scope="module")
def prompts() -> tuple[torch.Tensor, torch.Tensor]:
    return left_padded([5, 7, 3, 7])


@pytest.fixture(scope="module")
def llama_eos(llama: Any, prompts: tuple[torch.Tensor, torch.Tensor]) -> list[int]:
    return frequent_tokens(llama, *prompts, n=2)


def tiny_mistral(window: int = 4) -> Any:
    """A Mistral whose sliding window is shorter than the prompts, so the sliding layers matter."""
    torch.manual_seed(0)
    config = MistralConfig(
        vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, sliding_window=window, bos_token_id=1,
        eos_token_id=2, pad_token_id=PAD,
    )  # fmt: skip
    return MistralForCausalLM(config).eval()


def both(model: Any, ids: Any, mask: Any, **settings: Any) -> tuple[Any, Any]:
    """transformers' and logitkit's greedy sequences for the same settings."""
    ref = model.generate(ids, attention_mask=mask, do_sample=False, pad_token_id=PAD, **settings)
    out = logitkit.generate(model, ids, None, attention_mask=mask, pad_token_id=PAD, **settings)
    return ref, out


# -- use_cache ------------------------------------------------------------------------------


def test_use_cache_false_matches_transformers_and_the_cached_run(llama, prompts, llama_eos) -> None:
    ids, mask = prompts
    ref, out = both(llama, ids, mask, max_new_tokens=10, eos_token_id=llama_eos, use_cache=False)
    assert torch.equal(out.sequences, ref)
    cached = logitkit.generate(
        llama, ids, None, attention_mask=mask, pad_token_id=PAD, max_new_tokens=10, eos_token_id=llama_eos
    )
    assert torch.equal(out.sequences, cached.sequences)
    assert "eos" in out.finish_reasons


def test_use_cache_false_feeds_the_whole_sequence_each_step(llama, prompts) -> None:
    ids, mask = prompts
    widths: list[int] = []
    hook = llama.register_forward_pre_hook(
        lambda module, args, kwargs: widths.append(int(kwargs["input_ids"].shape[1])), with_kwargs=True
    )
    try:
        logitkit.generate(llama, ids, None, attention_mask=mask, max_new_tokens=4, eos_token_id=[], use_cache=False)
    finally:
        hook.remove()
    assert widths == [7, 8, 9, 10]


def test_use_cache_false_matches_transformers_encoder_decoder(t5, prompts) -> None:
    ids, mask = prompts
    ref = t5.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=8, use_cache=False)
    out = logitkit.generate(t5, ids, None, attention_mask=mask, max_new_tokens=8, use_cache=False)
    assert torch.equal(out.sequences, ref)


def test_use_cache_false_matches_transformers_beam_search(llama, prompts, llama_eos) -> None:
    ids, mask = prompts
    ref, out = both(
        llama, ids, mask, max_new_tokens=8, eos_token_id=llama_eos, num_beams=3, use_cache=False
    )
    assert torch.equal(out.sequences, ref)


# -- cache_implementation -------------------------------------------------------------------


@pytest.mark.parametrize("cache", ["dynamic", "static", "sliding_window", "hybrid"])
def test_cache_implementation_matches_transformers(llama, prompts, llama_eos, cache) -> None:
    ids, mask = prompts
    ref, out = both(llama, ids, mask, max_new_tokens=10, eos_token_id=llama_eos, cache_implementation=cache)
    assert torch.equal(out.sequences, ref)


@pytest.mark.parametrize("cache", ["dynamic", "static", "sliding_window", "hybrid"])
def test_cache_implementation_matches_transformers_with_a_sliding_window_model(prompts, cache) -> None:
    mistral = tiny_mistral(window=4)
    ids, mask = prompts
    ref, out = both(mistral, ids, mask, max_new_tokens=10, eos_token_id=[], cache_implementation=cache)
    assert torch.equal(out.sequences, ref)


def test_static_cache_is_the_one_the_model_sees(llama, prompts) -> None:
    from transformers import StaticCache

    seen: list[Any] = []
    hook = llama.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("cache", kwargs.get("past_key_values"))),
        with_kwargs=True,
    )
    try:
        ids, mask = prompts
        logitkit.generate(llama, ids, None, attention_mask=mask, max_new_tokens=3, cache_implementation="static")
    finally:
        hook.remove()
    assert len(seen) == 3 and all(isinstance(c, StaticCache) for c in seen)
    assert seen[0].get_max_length() == ids.shape[1] + 3 - 1  # max_length - 1, as transformers


@pytest.mark.parametrize("cache", ["static", "hybrid"])
def test_static_cache_matches_transformers_encoder_decoder_and_beams(t5, prompts, cache) -> None:
    ids, mask = prompts
    ref = t5.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=8, cache_implementation=cache)
    out = logitkit.generate(t5, ids, None, attention_mask=mask, max_new_tokens=8, cache_implementation=cache)
    assert torch.equal(out.sequences, ref)
    ref = t5.generate(
        ids, attention_mask=mask, do_sample=False, max_new_tokens=8, num_beams=3, cache_implementation=cache
    )
    out = logitkit.generate(
        t5, ids, None, attention_mask=mask, max_new_tokens=8, num_beams=3, cache_implementation=cache
    )
    assert torch.equal(out.sequences, ref)


def test_static_cache_matches_transformers_beam_search(llama, prompts, llama_eos) -> None:
    ids, mask = prompts
    ref, out = both(
        llama, ids, mask, max_new_tokens=8, eos_token_id=llama_eos, num_beams=3, num_return_sequences=2,
        cache_implementation="static",
    )  # fmt: skip
    assert torch.equal(out.sequences, ref)


def test_cache_config_max_cache_len_sizes_the_static_cache(llama, prompts) -> None:
    ids, mask = prompts
    seen: list[Any] = []
    hook = llama.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("cache")), with_kwargs=True
    )
    try:
        out = logitkit.generate(
            llama, ids, None, attention_mask=mask, max_new_tokens=3, cache_implementation="static",
            cache_config={"max_cache_len": 40},
        )  # fmt: skip
    finally:
        hook.remove()
    assert seen[0].get_max_length() == 40
    plain = logitkit.generate(llama, ids, None, attention_mask=mask, max_new_tokens=3)
    assert torch.equal(out.sequences, plain.sequences)
    with pytest.raises(ConfigError, match=r"generation\.cache_config: a static cache takes only max_cache_len"):
        logitkit.generate(
            llama, ids, None, attention_mask=mask, max_new_tokens=3, cache_implementation="static",
            cache_config={"nbits": 4},
        )  # fmt: skip


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only error; CUDA machines offload for real")
@pytest.mark.parametrize("cache", ["offloaded", "offloaded_static", "offloaded_hybrid", "offloaded_hybrid_chunked"])
def test_offloaded_caches_say_they_need_cuda(llama, prompts, cache) -> None:
    ids, mask = prompts
    with pytest.raises(ConfigError, match=r"generation\.cache_implementation: .*needs CUDA"):
        logitkit.generate(llama, ids, None, attention_mask=mask, max_new_tokens=3, cache_implementation=cache)


def test_quantized_cache_names_the_missing_package(llama, prompts) -> None:
    import importlib.util

    if importlib.util.find_spec("optimum") is not None:
        pytest.skip("optimum is installed here")  # the error is for machines without it
    ids, mask = prompts
    with pytest.raises(ConfigError, match=r"needs optimum-quanto: pip install optimum-quanto"):
        logitkit.generate(llama, ids, None, attention_mask=mask, max_new_tokens=3, cache_implementation="quantized")


def test_other_cache_implementations_are_refused_by_name(llama, t5, prompts) -> None:
    ids, mask = prompts
    with pytest.raises(ConfigError, match=r"'paged' is transformers' continuous-batching"):
        logitkit.generate(llama, ids, None, attention_mask=mask, max_new_tokens=3, cache_implementation="paged")
    with pytest.raises(ConfigError, match=r"'quantized' works on decoder-only models only"):
        logitkit.generate(t5, ids, None, attention_mask=mask, max_new_tokens=3, cache_implementation="quantized")
    with pytest.raises(ConfigError, match=r"generation\.cache_implementation"):
        logitkit.generate(llama, ids, None, attention_mask=mask, max_new_tokens=3, cache_implementation="mamba")


def test_cache_settings_need_a_transformers_model() -> None:
    def fn(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.zeros(input_ids.shape[0], 8)

    ids = torch.tensor([[3, 4]])
    with pytest.raises(ConfigError, match=r"generation\.cache_implementation: needs a transformers model"):
        logitkit.generate(fn, ids, None, max_new_tokens=2, cache_implementation="static")
    # use_cache=False is what a callable does anyway.
    assert logitkit.generate(fn, ids, None, max_new_tokens=2, use_cache=False).sequences.shape == (1, 4)


# -- compile_config / disable_compile -----------------------------------------------------


class CompileSpy:
    """Stands in for ``model.get_compiled_call``: records each config and returns the plain call (no compile)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.configs: list[Any] = []

    def __call__(self, compile_config: Any) -> Any:
        self.configs.append(compile_config)
        return self.model.__call__


@pytest.mark.parametrize(
    ("cache", "compile_config", "disable"),
    [
        ("static", {"_compile_all_devices": True, "fullgraph": True, "mode": "default"}, False),
        ("static", {"_compile_all_devices": True}, True),
        ("dynamic", {"_compile_all_devices": True}, False),
        ("static", {"mode": "default"}, False),  # CPU: no compile without _compile_all_devices
        ("static", None, False),
    ],
)
def test_compile_decision_and_config_match_transformers(
    llama, prompts, monkeypatch, cache, compile_config, disable
) -> None:
    ids, mask = prompts
    spy = CompileSpy(llama)
    monkeypatch.setattr(llama, "get_compiled_call", spy)
    gc_compile = None
    if compile_config is not None:
        gc_compile = CompileConfig(**{k: v for k, v in compile_config.items() if not k.startswith("_")})
        if "_compile_all_devices" in compile_config:
            gc_compile._compile_all_devices = compile_config["_compile_all_devices"]
    ref = llama.generate(
        ids, attention_mask=mask, do_sample=False, max_new_tokens=5, pad_token_id=PAD,
        cache_implementation=cache, compile_config=gc_compile, disable_compile=disable,
    )  # fmt: skip
    theirs = list(spy.configs)
    spy.configs.clear()
    out = logitkit.generate(
        llama, ids, None, attention_mask=mask, max_new_tokens=5, pad_token_id=PAD,
        cache_implementation=cache, compile_config=compile_config, disable_compile=disable,
    )  # fmt: skip
    assert torch.equal(out.sequences, ref)
    assert [c.to_dict() for c in spy.configs] == [c.to_dict() for c in theirs]
    expect_compiled = cache == "static" and not disable and bool(compile_config and compile_config.get("_compile_all_devices"))
    assert bool(spy.configs) == expect_compiled


def test_compile_config_with_an_unknown_field_is_a_config_error(llama, prompts) -> None:
    ids, mask = prompts
    with pytest.raises(ConfigError, match=r"generation\.compile_config: .*CompileConfig takes fullgraph"):
        logitkit.generate(llama, ids, None, attention_mask=mask, max_new_tokens=2, compile_config={"speed": 1})


# -- output_attentions / output_hidden_states ------------------------------------------------


def assert_same_nested(ours: Any, theirs: Any) -> None:
    assert type(ours) is tuple and len(ours) == len(theirs)
    for a, b in zip(ours, theirs, strict=True):
        if isinstance(b, torch.Tensor):
            assert a.shape == b.shape
            assert torch.equal(a, b)
        else:
            assert_same_nested(a, b)


@pytest.mark.parametrize("do_sample", [False, True])
def test_attentions_and_hidden_states_equal_transformers(prompts, llama_eos, do_sample) -> None:
    model = tiny_llama()
    model.set_attn_implementation("eager")  # sdpa returns no attention weights, in transformers too
    ids, mask = prompts
    settings: dict[str, Any] = dict(max_new_tokens=6, eos_token_id=llama_eos, pad_token_id=PAD)
    torch.manual_seed(7)
    ref = model.generate(
        ids, attention_mask=mask, do_sample=do_sample, top_k=0, return_dict_in_generate=True,
        output_attentions=True, output_hidden_states=True, **settings,
    )  # fmt: skip
    pipe = {"processors": [], "selector": "multinomial"} if do_sample else None
    torch.manual_seed(7)
    out = logitkit.generate(
        model, ids, pipe, attention_mask=mask, output_attentions=True, output_hidden_states=True, **settings
    )
    assert torch.equal(out.sequences, ref.sequences)
    assert len(out.attentions) == out.new_tokens.shape[1]
    assert out.attentions[0][0].shape == (4, 4, 7, 7)  # [rows, heads, prompt, prompt] at the prefill
    assert_same_nested(out.attentions, ref.attentions)
    assert_same_nested(out.hidden_states, ref.hidden_states)
    assert out.encoder_attentions is None and out.decoder_attentions is None


def test_encoder_decoder_attentions_and_hidden_states_equal_transformers(prompts) -> None:
    model = tiny_t5()
    model.set_attn_implementation("eager")
    ids, mask = prompts
    ref = model.generate(
        ids, attention_mask=mask, do_sample=False, max_new_tokens=5, return_dict_in_generate=True,
        output_attentions=True, output_hidden_states=True,
    )  # fmt: skip
    out = logitkit.generate(
        model, ids, None, attention_mask=mask, max_new_tokens=5, output_attentions=True, output_hidden_states=True
    )
    assert torch.equal(out.sequences, ref.sequences)
    for name in ("decoder_attentions", "cross_attentions", "decoder_hidden_states"):
        assert_same_nested(getattr(out, name), getattr(ref, name))
    for name in ("encoder_attentions", "encoder_hidden_states"):
        assert_same_nested(tuple(getattr(out, name)), tuple(getattr(ref, name)))
    assert out.attentions is None and out.hidden_states is None


def test_beam_search_attentions_equal_transformers(prompts, llama_eos) -> None:
    model = tiny_llama()
    model.set_attn_implementation("eager")
    ids, mask = prompts
    settings: dict[str, Any] = dict(max_new_tokens=5, eos_token_id=llama_eos, pad_token_id=PAD, num_beams=2)
    ref = model.generate(
        ids, attention_mask=mask, do_sample=False, return_dict_in_generate=True, output_attentions=True, **settings
    )
    out = logitkit.generate(model, ids, None, attention_mask=mask, output_attentions=True, **settings)
    assert torch.equal(out.sequences, ref.sequences)
    assert_same_nested(out.attentions, ref.attentions)


# -- model keywords --------------------------------------------------------------------------


def test_token_type_ids_are_forwarded_as_transformers_does() -> None:
    gpt2 = tiny_gpt2()
    ids, mask = left_padded([6, 4, 6])
    token_types = torch.zeros_like(ids)
    token_types[:, -2:] = 1  # the last prompt tokens are of type 1; transformers repeats the last column
    ref = gpt2.generate(
        ids, attention_mask=mask, token_type_ids=token_types, do_sample=False, max_new_tokens=8,
        pad_token_id=PAD, eos_token_id=None,
    )  # fmt: skip
    out = logitkit.generate(
        gpt2, ids, None, attention_mask=mask, token_type_ids=token_types, max_new_tokens=8, pad_token_id=PAD,
        eos_token_id=[],
    )  # fmt: skip
    assert torch.equal(out.sequences, ref)
    plain = logitkit.generate(gpt2, ids, None, attention_mask=mask, max_new_tokens=8, pad_token_id=PAD, eos_token_id=[])
    assert not torch.equal(plain.sequences, out.sequences)  # the keyword reached the model


def test_token_type_ids_follow_the_beams() -> None:
    gpt2 = tiny_gpt2()
    ids, mask = left_padded([6, 4, 6])
    token_types = torch.ones_like(ids)
    settings: dict[str, Any] = dict(do_sample=False, num_beams=3, max_new_tokens=6, pad_token_id=PAD)
    ref = gpt2.generate(ids, attention_mask=mask, token_type_ids=token_types, eos_token_id=None, **settings)
    del settings["do_sample"]
    out = logitkit.generate(gpt2, ids, None, attention_mask=mask, token_type_ids=token_types, eos_token_id=[], **settings)
    assert torch.equal(out.sequences, ref)


def test_left_padded_gpt2_gets_transformers_positions() -> None:
    # Absolute position embeddings: the positions must count from each row's first real token.
    gpt2 = tiny_gpt2()
    ids, mask = left_padded([6, 3, 5])
    ref = gpt2.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=8, pad_token_id=PAD, eos_token_id=None)
    out = logitkit.generate(gpt2, ids, None, attention_mask=mask, max_new_tokens=8, pad_token_id=PAD, eos_token_id=[])
    assert torch.equal(out.sequences, ref)


def test_unknown_keywords_are_still_config_errors(llama, prompts) -> None:
    ids, mask = prompts
    with pytest.raises(ConfigError, match=r"generation\.max_new_tokenz"):
        logitkit.generate(llama, ids, None, attention_mask=mask, max_new_tokenz=3)
    with pytest.raises(ConfigError, match=r"generation\.past_key_values"):
        logitkit.generate(llama, ids, None, attention_mask=mask, past_key_values=None)
    with pytest.raises(ConfigError, match=r"inputs_embeds: prompts given as embeddings are not supported"):
        logitkit.generate(llama, ids, None, attention_mask=mask, inputs_embeds=torch.zeros(4, 7, 32))


# -- decoder_start_token_id per row ------------------------------------------------------------


def test_per_row_decoder_start_matches_transformers(t5, prompts) -> None:
    ids, mask = prompts
    starts = [0, 5, 9, 0]
    ref = t5.generate(ids, attention_mask=mask, do_sample=False, max_new_tokens=8, decoder_start_token_id=starts)
    out = logitkit.generate(t5, ids, None, attention_mask=mask, max_new_tokens=8, decoder_start_token_id=starts)
    assert torch.equal(out.sequences, ref)
    assert out.sequences[:, 0].tolist() == starts
    ref = t5.generate(
        ids, attention_mask=mask, do_sample=False, max_new_tokens=6, num_beams=2, decoder_start_token_id=starts
    )
    out = logitkit.generate(
        t5, ids, None, attention_mask=mask, max_new_tokens=6, num_beams=2, decoder_start_token_id=starts
    )
    assert torch.equal(out.sequences, ref)


def test_per_row_decoder_start_of_the_wrong_length_is_refused(t5, prompts) -> None:
    ids, mask = prompts
    with pytest.raises(ConfigError, match=r"tokens\.decoder_start: decoder_start_token_id has 2 ids for 4 prompts"):
        logitkit.generate(t5, ids, None, attention_mask=mask, max_new_tokens=3, decoder_start_token_id=[0, 5])


# -- prompt-less generation from bos ---------------------------------------------------------


def test_bos_only_generation_matches_transformers(llama) -> None:
    ref = llama.generate(do_sample=False, max_new_tokens=10, pad_token_id=PAD)
    out = logitkit.generate(llama, None, max_new_tokens=10, pad_token_id=PAD)
    assert ref.shape == (1, 11) and ref[0, 0].item() == llama.config.bos_token_id
    assert torch.equal(out.sequences, ref)


def test_bos_only_batch_size_comes_from_a_tensor_keyword() -> None:
    gpt2 = tiny_gpt2()
    token_types = torch.tensor([[0], [1], [1]])
    ref = gpt2.generate(token_type_ids=token_types, do_sample=False, max_new_tokens=6, pad_token_id=PAD, eos_token_id=None)
    out = logitkit.generate(gpt2, None, token_type_ids=token_types, max_new_tokens=6, pad_token_id=PAD, eos_token_id=[])
    assert ref.shape == (3, 7)
    assert torch.equal(out.sequences, ref)


def test_bos_only_encoder_decoder_matches_transformers(t5) -> None:
    ref = t5.generate(do_sample=False, max_new_tokens=6, bos_token_id=5)
    out = logitkit.generate(t5, None, max_new_tokens=6, bos_token_id=5)
    assert torch.equal(out.sequences, ref)


def test_bos_only_without_a_bos_token_is_a_config_error(t5) -> None:
    with pytest.raises(ConfigError, match=r"tokens\.bos: input_ids=None starts every row from the bos token"):
        logitkit.generate(t5, None, max_new_tokens=3)


# -- carried from a GenerationConfig -----------------------------------------------------------


def test_fields_carried_from_a_generation_config_reproduce_transformers(prompts, llama_eos, monkeypatch) -> None:
    from transformers import GenerationConfig

    from logitkit import Pipeline
    from logitkit.model_settings import from_generation_config

    model = tiny_llama()
    model.set_attn_implementation("eager")
    spy = CompileSpy(model)
    monkeypatch.setattr(model, "get_compiled_call", spy)
    compile_config = CompileConfig(fullgraph=True, mode="default")
    compile_config._compile_all_devices = True
    gc = GenerationConfig(
        do_sample=False, max_new_tokens=6, eos_token_id=llama_eos, pad_token_id=PAD, cache_implementation="static",
        compile_config=compile_config, output_attentions=True, output_hidden_states=True,
        return_dict_in_generate=True,
    )  # fmt: skip
    ids, mask = prompts
    ref = model.generate(ids, attention_mask=mask, generation_config=gc)
    theirs = [c.to_dict() for c in spy.configs]
    spy.configs.clear()
    fields = from_generation_config(gc)
    assert fields == {
        "cache_implementation": "static",
        "compile_config": {**compile_config.to_dict(), "_compile_all_devices": True},
        "output_attentions": True,
        "output_hidden_states": True,
    }
    pipe = Pipeline.from_config(
        {"generation": {**fields, "max_new_tokens": 6}, "tokens": {"eos": llama_eos, "pad": PAD}}
    )
    out = logitkit.generate(model, ids, pipe, attention_mask=mask)
    assert torch.equal(out.sequences, ref.sequences)
    assert [c.to_dict() for c in spy.configs] == theirs and theirs
    assert_same_nested(out.attentions, ref.attentions)
    assert_same_nested(out.hidden_states, ref.hidden_states)
    no_cache = from_generation_config(GenerationConfig(use_cache=False, disable_compile=True))
    assert no_cache == {"use_cache": False, "disable_compile": True}


class BiasedLlama:
    """Built lazily: a LlamaForCausalLM whose forward takes an extra per-row input, ``logit_bias`` [rows, vocab]."""

    @staticmethod
    def build() -> Any:
        from transformers import LlamaForCausalLM

        class Biased(LlamaForCausalLM):  # type: ignore[misc]
            def forward(self, *args: Any, logit_bias: torch.Tensor | None = None, **kwargs: Any) -> Any:
                out = super().forward(*args, **kwargs)
                if logit_bias is not None:
                    out.logits = out.logits + logit_bias[:, None, :]
                return out

        base = tiny_llama()
        model = Biased(base.config).eval()
        model.load_state_dict(base.state_dict())
        return model


@pytest.mark.parametrize("num_beams", [1, 3])
def test_an_extra_model_input_is_forwarded_every_step_and_repeated_for_beams(prompts, num_beams) -> None:
    model = BiasedLlama.build()
    ids, mask = prompts
    bias = torch.zeros(ids.shape[0], model.config.vocab_size)
    bias[torch.arange(ids.shape[0]), torch.tensor([10, 20, 30, 40])] = 2.5  # each row leans to its own token
    settings: dict[str, Any] = dict(max_new_tokens=6, pad_token_id=PAD, num_beams=num_beams)
    ref = model.generate(ids, attention_mask=mask, do_sample=False, logit_bias=bias, eos_token_id=None, **settings)
    out = logitkit.generate(model, ids, None, attention_mask=mask, logit_bias=bias, eos_token_id=[], **settings)
    assert torch.equal(out.sequences, ref)
    plain = logitkit.generate(model, ids, None, attention_mask=mask, eos_token_id=[], **settings)
    assert not torch.equal(plain.sequences, out.sequences)


def test_convert_reads_the_same_fields_from_generation_config_json(prompts, tmp_path) -> None:
    from transformers import GenerationConfig

    from logitkit import Pipeline
    from logitkit.formats.generation_config import from_generation_config as convert
    from logitkit.model_settings import from_generation_config

    gc = GenerationConfig(
        max_new_tokens=5, cache_implementation="static", compile_config=CompileConfig(fullgraph=True),
        disable_compile=True, output_hidden_states=True, return_dict_in_generate=True,
    )  # fmt: skip
    import json

    # to_json_string writes compile_config as a mapping, which transformers' own from_dict refuses to read.
    (tmp_path / "generation_config.json").write_text(gc.to_json_string())
    saved = json.loads((tmp_path / "generation_config.json").read_text())
    assert isinstance(saved["compile_config"], dict)
    conv = convert(saved)
    ours = from_generation_config(gc)
    assert {k: conv.value["generation"][k] for k in ours} == ours
    assert not [loss for loss in conv.lost if loss.parameter in ours]
    pipe = Pipeline.from_config(conv.value)
    model = tiny_llama()
    ids, mask = prompts
    out = logitkit.generate(model, ids, pipe, attention_mask=mask, pad_token_id=PAD)
    ref = model.generate(
        ids, attention_mask=mask, do_sample=False, max_new_tokens=5, pad_token_id=PAD, cache_implementation="static",
        return_dict_in_generate=True, output_hidden_states=True,
    )  # fmt: skip
    assert torch.equal(out.sequences, ref.sequences)
    assert_same_nested(out.hidden_states, ref.hidden_states)


def test_per_row_decoder_start_from_a_generation_config_matches_transformers(t5, prompts) -> None:
    from transformers import GenerationConfig

    from logitkit import Pipeline

    ids, mask = prompts
    gc = GenerationConfig(do_sample=False, max_new_tokens=7, decoder_start_token_id=[0, 5, 9, 0], eos_token_id=1)
    ref = t5.generate(ids, attention_mask=mask, generation_config=gc)
    pipe = Pipeline.from_generation_config(gc)
    assert pipe.tokens.decoder_start == [0, 5, 9, 0]
    out = logitkit.generate(t5, ids, pipe, attention_mask=mask, max_new_tokens=7)
    assert torch.equal(out.sequences, ref)


def test_a_real_compile_with_the_eager_backend_keeps_the_tokens(prompts) -> None:
    # torch.compile traces the decoding step with dynamo; the "eager" backend skips code generation,
    # so this stays a matter of seconds on CPU while still running the compiled call.
    model = tiny_llama()
    ids, mask = prompts
    settings: dict[str, Any] = dict(max_new_tokens=6, pad_token_id=PAD, eos_token_id=[], cache_implementation="static")
    compile_config = {"backend": "eager", "mode": None, "fullgraph": False, "_compile_all_devices": True}
    out = logitkit.generate(model, ids, None, attention_mask=mask, compile_config=compile_config, **settings)
    assert hasattr(model, "_compiled_call")
    assert model._last_compile_config.to_dict() == {k: v for k, v in compile_config.items() if not k.startswith("_")} | {
        "dynamic": None, "options": None
    }
    settings["eos_token_id"] = None
    ref = model.generate(ids, attention_mask=mask, do_sample=False, disable_compile=True, **settings)
    assert torch.equal(out.sequences, ref)
