"""guidance_scale: step-by-step parity with transformers' unbatched CFG on tiny random models."""

from __future__ import annotations

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
from transformers.generation.logits_process import UnbatchedClassifierFreeGuidanceLogitsProcessor

from logitkit import ConfigError, Pipeline
from logitkit.config import resolve
from logitkit_builtins.guidance import MissingModelError

VOCAB = 64


def _gpt2() -> torch.nn.Module:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB,
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=0,
    )
    return GPT2LMHeadModel(config).eval()


def _llama() -> torch.nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model(request: pytest.FixtureRequest) -> torch.nn.Module:
    return _gpt2() if request.param == "gpt2" else _llama()


def _negative_prompt() -> dict[str, torch.Tensor]:
    ids = torch.randint(0, VOCAB, (3, 4), generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[1, 1, 1, 1], [0, 1, 1, 1], [0, 0, 1, 1]])
    return {"unconditional_ids": ids, "unconditional_attention_mask": mask}


@pytest.mark.parametrize("negative", [False, True])
@pytest.mark.parametrize("use_cache", [True, False])
def test_every_step_equals_transformers(
    model: torch.nn.Module, negative: bool, use_cache: bool
) -> None:
    context = _negative_prompt() if negative else {}
    theirs = UnbatchedClassifierFreeGuidanceLogitsProcessor(
        1.7, model, use_cache=use_cache, **context
    )
    pipe = Pipeline.from_config(
        [{"name": "guidance_scale", "guidance_scale": 1.7, "use_cache": use_cache}],
        model=model,
        **context,
    )
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(0, VOCAB, (3, 5), generator=gen)
    # transformers' processor keeps the branch between calls; a batch state does that here.
    state = pipe.start(ids)
    for step in range(5):
        scores = torch.randn(3, VOCAB, generator=gen)
        with torch.no_grad():
            expected = theirs(ids, scores)
        got = state(ids, scores)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6, msg=f"step {step}")
        chosen = torch.randint(0, VOCAB, (3,), generator=gen)
        state.accept(chosen)
        ids = torch.cat([ids, chosen.unsqueeze(-1)], dim=1)


def test_negative_prompt_names_from_generate_are_accepted(model: torch.nn.Module) -> None:
    context = _negative_prompt()
    aliased = {"negative_prompt_ids": context["unconditional_ids"],
               "negative_prompt_attention_mask": context["unconditional_attention_mask"]}  # fmt: skip
    ids = torch.randint(0, VOCAB, (3, 5))
    scores = torch.randn(3, VOCAB)
    a = Pipeline.from_config([{"guidance_scale": 2.0}], model=model, **context)(ids, scores)
    b = Pipeline.from_config([{"guidance_scale": 2.0}], model=model, **aliased)(ids, scores)
    plain = Pipeline.from_config([{"guidance_scale": 2.0}], model=model)(ids, scores)
    assert torch.equal(a, b)
    assert not torch.equal(a, plain)


def test_scale_one_gives_log_probabilities_without_a_model_call() -> None:
    scores = torch.randn(2, VOCAB)
    out = Pipeline.from_config([{"guidance_scale": 1.0}])(
        torch.zeros(2, 3, dtype=torch.long), scores
    )
    assert torch.equal(out, torch.log_softmax(scores, dim=-1))


def test_a_new_generation_starts_the_unconditional_branch_over(model: torch.nn.Module) -> None:
    pipe = Pipeline.from_config([{"guidance_scale": 3.0}], model=model)
    gen = torch.Generator().manual_seed(4)
    first = torch.randint(0, VOCAB, (2, 6), generator=gen)
    for extra in range(3):
        pipe(torch.cat([first, first[:, :extra]], dim=1), torch.randn(2, VOCAB, generator=gen))
    prompt = torch.randint(0, VOCAB, (2, 4), generator=gen)
    scores = torch.randn(2, VOCAB, generator=gen)
    fresh = Pipeline.from_config([{"guidance_scale": 3.0}], model=model)
    assert torch.equal(pipe(prompt, scores), fresh(prompt, scores))


def test_guidance_without_a_model_is_a_clear_error() -> None:
    pipe = Pipeline.from_config([{"guidance_scale": 1.5}])
    with pytest.raises(MissingModelError, match=r"Pipeline.from_config\(config, model=model\)"):
        pipe(torch.zeros(1, 3, dtype=torch.long), torch.randn(1, VOCAB))


def test_guidance_scale_range_is_validated() -> None:
    with pytest.raises(
        ConfigError, match=r"processors\[0\].guidance_scale: must be >= 0 \(got -1\)"
    ):
        resolve([{"guidance_scale": -1}])


def test_half_precision_scores_keep_their_dtype(model: torch.nn.Module) -> None:
    scores = torch.randn(2, VOCAB).to(torch.bfloat16)
    out = Pipeline.from_config([{"guidance_scale": 1.5}], model=model)(
        torch.zeros(2, 3, dtype=torch.long), scores
    )
    assert out.dtype == torch.bfloat16


@pytest.mark.parametrize("negative", [False, True])
def test_logitkit_generate_equals_transformers_generate_with_guidance(
    model: torch.nn.Module, negative: bool
) -> None:
    import logitkit

    gen = torch.Generator().manual_seed(6)
    prompt = torch.randint(1, VOCAB, (3, 5), generator=gen)
    context = (
        {"negative_prompt_ids": torch.randint(1, VOCAB, (3, 3), generator=gen)} if negative else {}
    )
    pipe = Pipeline.from_config([{"guidance_scale": 1.5}], model=model, **context)
    ours = logitkit.generate(model, prompt, pipe, max_new_tokens=6, pad_token_id=0).sequences
    theirs = model.generate(
        prompt, guidance_scale=1.5, max_new_tokens=6, do_sample=False, pad_token_id=0, **context
    )
    assert torch.equal(ours, theirs)
