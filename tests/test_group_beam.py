"""Group (diverse) beam search, which transformers v5 no longer ships in its core.

References: with one group it must equal transformers' own beam search; the
Hamming diversity penalty must equal transformers 4.x's
``HammingDiversityLogitsProcessor`` (transcribed below, as v5 removed it).
"""

from __future__ import annotations

import pytest
import torch
from _generation_helpers import PAD, frequent_tokens, left_padded, tiny_llama, tiny_t5

import logitkit
from logitkit_builtins.group_beam import diversity_penalty


@pytest.fixture(scope="module")
def llama() -> object:
    return tiny_llama()


@pytest.fixture(scope="module")
def prompts() -> tuple[torch.Tensor, torch.Tensor]:
    return left_padded([5, 7, 3, 7])


@pytest.fixture(scope="module")
def eos(llama, prompts) -> list[int]:  # type: ignore[no-untyped-def]
    return frequent_tokens(llama, *prompts, n=2)


@pytest.mark.parametrize(
    ("num_beams", "length_penalty", "early_stopping"),
    [(2, 1.0, False), (3, 0.5, True), (4, 2.0, "never")],
)
def test_one_group_equals_transformers_beam_search(
    llama, prompts, eos, num_beams, length_penalty, early_stopping
) -> None:
    ids, mask = prompts
    settings = dict(
        num_beams=num_beams,
        length_penalty=length_penalty,
        early_stopping=early_stopping,
        max_new_tokens=10,
        num_return_sequences=2,
    )
    ref = llama.generate(
        ids, attention_mask=mask, do_sample=False, eos_token_id=eos, pad_token_id=PAD, **settings
    )
    out = logitkit.generate(
        llama,
        ids,
        None,
        attention_mask=mask,
        eos_token_id=eos,
        pad_token_id=PAD,
        search="group_beam_search",
        **settings,
    )
    # 5.24 fills rows that ended early with `pad or eos` (eos here, as PAD is 0); 4.x's group beam
    # search, which we follow, fills with pad.
    assert torch.equal(out.sequences, filled_with_pad(ref, ids.shape[1], eos))


def filled_with_pad(sequences: torch.Tensor, prompt_length: int, eos: list[int]) -> torch.Tensor:
    """``sequences`` with everything after each row's first generated eos set to PAD."""
    out = sequences.clone()
    for row in out:
        hits = [i for i in range(prompt_length, row.shape[0]) if int(row[i]) in eos]
        if hits:
            row[hits[0] + 1 :] = PAD
    return out


def hamming_4x(
    scores, current_tokens, beam_group_idx, diversity_penalty, num_beams, num_beam_groups
):  # type: ignore[no-untyped-def]
    """transformers 4.x HammingDiversityLogitsProcessor.__call__, loop and all."""
    num_sub_beams = num_beams // num_beam_groups
    batch_size = current_tokens.shape[0] // num_beams
    group_start_idx = beam_group_idx * num_sub_beams
    group_end_idx = min(group_start_idx + num_sub_beams, num_beams)
    group_size = group_end_idx - group_start_idx
    vocab_size = scores.shape[-1]
    if group_start_idx == 0:
        return scores
    scores_processed = scores.clone()
    for batch_idx in range(batch_size):
        previous_group_tokens = current_tokens[
            batch_idx * num_beams : batch_idx * num_beams + group_start_idx
        ]
        token_frequency = torch.bincount(previous_group_tokens, minlength=vocab_size).to(
            scores.device
        )
        scores_processed[batch_idx * group_size : (batch_idx + 1) * group_size] -= (
            diversity_penalty * token_frequency
        )
    return scores_processed


@pytest.mark.parametrize(("num_beams", "groups"), [(4, 2), (6, 3), (4, 4)])
def test_diversity_penalty_equals_transformers_4x(num_beams: int, groups: int) -> None:
    gen = torch.Generator().manual_seed(num_beams * 10 + groups)
    batch, vocab, group_size = 3, 17, num_beams // groups
    current = torch.randint(0, 5, (batch * num_beams,), generator=gen)  # few ids, so repeats happen
    for g in range(groups):
        scores = torch.randn(batch * group_size, vocab, generator=gen)
        ours = diversity_penalty(scores, current, batch, num_beams, g * group_size, 0.7)
        assert torch.allclose(ours, hamming_4x(scores, current, g, 0.7, num_beams, groups))


def test_diversity_penalty_makes_groups_differ(llama, prompts) -> None:
    ids, mask = prompts
    common = dict(
        num_beams=4, num_beam_groups=4, num_return_sequences=4, max_new_tokens=6, eos_token_id=[]
    )
    same = logitkit.generate(llama, ids, None, attention_mask=mask, diversity_penalty=0.0, **common)
    diverse = logitkit.generate(
        llama, ids, None, attention_mask=mask, diversity_penalty=50.0, **common
    )
    greedy = logitkit.generate(
        llama, ids, None, attention_mask=mask, max_new_tokens=6, eos_token_id=[]
    )
    for prompt in range(ids.shape[0]):
        rows = slice(4 * prompt, 4 * prompt + 4)
        # Without a penalty every one-beam group is greedy decoding.
        assert all(torch.equal(r, greedy.new_tokens[prompt]) for r in same.new_tokens[rows])
        # With a large one, the groups start with four different tokens.
        assert len(set(diverse.new_tokens[rows, 0].tolist())) == 4


def test_group_beam_search_on_an_encoder_decoder() -> None:
    t5 = tiny_t5()
    ids, mask = left_padded([5, 7])
    out = logitkit.generate(
        t5,
        ids,
        None,
        attention_mask=mask,
        num_beams=4,
        num_beam_groups=2,
        diversity_penalty=1.0,
        num_return_sequences=2,
        max_new_tokens=5,
    )
    assert out.sequences.shape[0] == 4
    assert len(out.finish_reasons) == 4 and out.sequences_scores is not None
    ref = t5.generate(ids, attention_mask=mask, num_beams=2, max_new_tokens=5, do_sample=False)
    one_group = logitkit.generate(
        t5,
        ids,
        None,
        attention_mask=mask,
        num_beams=2,
        search="group_beam_search",
        max_new_tokens=5,
    )
    assert torch.equal(one_group.sequences, ref)


def test_a_search_strategy_must_be_callable_and_can_be_chosen_by_name(make_registry) -> None:
    from _generation_helpers import Scripted

    from logitkit import hookimpl
    from logitkit.decoding import GenerationOutput

    seen = []

    def echo(job):  # type: ignore[no-untyped-def]
        seen.append(job.max_length)
        return GenerationOutput(job.input_ids, ["length"] * job.batch_size, job.prompt_length)

    class Broken:
        @hookimpl
        def register_search_strategies(self, register):  # type: ignore[no-untyped-def]
            register("broken", 42)

    class Echo:
        @hookimpl
        def register_search_strategies(self, register):  # type: ignore[no-untyped-def]
            register("echo", echo, "returns the prompt")

    reg = make_registry(inline={"broken": Broken(), "echo": Echo()})
    assert any("must be callable" in f.error for f in reg.failures)
    model = Scripted([[3]], 1, 10, 3)
    out = logitkit.generate(model, torch.tensor([[3]]), None, search="echo", max_new_tokens=4)
    assert seen == [5] and out.sequences.tolist() == [[3]]
