"""Decoding modes transformers 5 no longer runs, against transformers 4.55.4's own outputs.

The fixtures (tests/fixtures/hf455/outputs.json) were written by
``tests/fixtures/hf455/build.sh`` in a venv with transformers 4.55.4 and the
same torch; the models are rebuilt here from their seed and checked against
the weights' checksum stored with each case. Every case runs its
GenerationConfig fields through the translation (no setting repeated as a
keyword) on left-padded batches, except 4.55.4's low_memory contrastive
search, which only runs at batch 1 (FINDINGS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from _hf455 import case_id, cases, checked_model, document, gc_fields, model, pipeline_for, run
from seeded_models import PAD

import logitkit
from logitkit.errors import ConfigError
from logitkit.formats.generation_config import from_generation_config
from logitkit.formats.hf_search_modes import SearchModeError, search_mode
from logitkit_builtins.dola import premature_layers

MODES = ("contrastive", "dola", "constrained", "constraints", "group_beam")


def test_the_fixtures_are_transformers_4_55_4_on_weights_this_venv_rebuilds() -> None:
    doc = document()
    assert doc["transformers"] == "4.55.4"
    assert doc["torch"].startswith(torch.__version__.split("+")[0])
    for case in doc["cases"]:
        checked_model(case)  # asserts the checksum


@pytest.mark.parametrize("case", cases("greedy"), ids=case_id)
def test_greedy_fixtures_equal_transformers_live(case: dict[str, Any]) -> None:
    # 4.55.4 and the live transformers agree on greedy, so the fixtures and this venv share the weights' meaning.
    built = checked_model(case)
    ids, mask = torch.tensor(case["input_ids"]), torch.tensor(case["attention_mask"])
    live = built.generate(ids, attention_mask=mask, do_sample=False, **case["generation_config"])
    assert live.tolist() == case["sequences"]
    assert run(case).sequences.tolist() == case["sequences"]


@pytest.mark.parametrize(
    "case",
    [c for prefix in MODES for c in cases(prefix) if not c["generation_config"].get("do_sample")],
    ids=case_id,
)
def test_ids_equal_transformers_4_55_4(case: dict[str, Any]) -> None:
    assert run(case).sequences.tolist() == case["sequences"]


def test_sampled_dola_equals_transformers_4_55_4_under_the_same_seed() -> None:
    # transformers' draw is torch.multinomial on the global generator: the `multinomial` selector.
    # (The translation still picks `sample` under do_sample: issue 13 part A changes that default.)
    # 4.55.4's repetition_penalty also penalises the pad ids of left padding; 5.24's generate() skips
    # them (prompt_ignore_length), and so does logitkit by default: `ignore_padding: false` is 4.x.
    case = cases("dola_sample")[0]
    conversion = from_generation_config(gc_fields(case))
    processors = [
        {**p, "ignore_padding": False} if p["name"] == "repetition_penalty" else p
        for p in conversion.value["processors"]
    ]
    config = {**conversion.value, "processors": processors, "selector": "multinomial"}
    built = checked_model(case)  # built first: building a model draws from torch's generator
    torch.manual_seed(case["torch_seed"])
    out = logitkit.generate(
        built,
        torch.tensor(case["input_ids"]),
        logitkit.Pipeline.from_config(config),
        attention_mask=torch.tensor(case["attention_mask"]),
    )
    assert out.sequences.tolist() == case["sequences"]


def summary(step: torch.Tensor) -> list[Any]:
    """The fixture's per-row summary of a scores tensor (see generate_fixtures.summary)."""
    values, tokens = torch.topk(step.float(), 5, dim=-1)
    finite = torch.isfinite(step)
    return [
        [tokens[r].tolist(), values[r].tolist(), float(step[r][finite[r]].sum()), int((~finite[r]).sum())]
        for r in range(step.shape[0])
    ]


@pytest.mark.parametrize("case", cases("group_beam"), ids=case_id)
def test_group_beam_scores_and_logits_equal_transformers_4_55_4(case: dict[str, Any]) -> None:
    out = run(case)
    assert out.sequences_scores is not None
    assert out.sequences_scores.tolist() == pytest.approx(case["sequences_scores"], abs=1e-4)
    for kind in ("scores", "logits"):
        ours = getattr(out, kind)
        assert ours is not None and len(ours) == len(case[kind])
        for step, expected in zip(ours, case[kind], strict=True):
            for row, want in zip(summary(step), expected, strict=True):
                assert row[0] == want[0]  # the five best tokens, in order
                assert row[1] == pytest.approx(want[1], abs=1e-3)
                assert row[2] == pytest.approx(want[2], rel=1e-4, abs=1e-2)
                assert row[3] == want[3]  # how many tokens are -inf


def test_group_beam_fills_rows_that_ended_early_with_pad_as_4x() -> None:
    case = next(c for c in cases("group_beam") if c["model"] == "llama")
    eos = case["generation_config"]["eos_token_id"]
    sequences = run(case).sequences
    prompt = len(case["input_ids"][0])
    ended_early = [row for row in sequences.tolist() if eos in row[prompt:-1]]
    assert ended_early, "the case must have a row that ends before the others"
    for row in ended_early:
        after = row[prompt:][row[prompt:].index(eos) + 1 :]
        assert after and set(after) == {PAD}


def test_constraints_written_in_a_config_file(tmp_path: Path) -> None:
    case = next(c for c in cases("constraints_objects") if c["model"] == "llama")
    (tmp_path / "forced.yaml").write_text(
        "generation:\n"
        "  num_beams: 5\n  max_new_tokens: 10\n  length_penalty: 0.5\n"
        "  search: constrained_beam_search\n"
        "  search_options:\n"
        "    constraints:\n"
        "      - phrasal: [19, 4, 27]\n"
        "      - disjunctive: [[50], [8, 9]]\n"
    )
    pipe = logitkit.Pipeline.from_config(tmp_path / "forced.yaml")
    out = logitkit.generate(
        checked_model(case),
        torch.tensor(case["input_ids"]),
        pipe,
        attention_mask=torch.tensor(case["attention_mask"]),
    )
    assert out.sequences.tolist() == case["sequences"]
    prompt = len(case["input_ids"][0])
    for row in out.sequences[:, prompt:].tolist():
        text = f" {' '.join(map(str, row))} "
        assert " 19 4 27 " in text and (50 in row or " 8 9 " in text)


@pytest.mark.parametrize(
    ("options", "where", "reason"),
    [
        ({"constraints": [{"phrasal": []}]}, "constraints[0].phrasal", "at least 1 item"),
        ({"constraints": [{"phrasal": [1], "disjunctive": [[2]]}]}, "constraints[0]", "exactly one"),
        ({"constraints": [{"disjunctive": [[5], [5, 6]]}]}, "constraints[0]", "may begin another"),
        ({"force_words_ids": [[-1]]}, "force_words_ids", ">= 0"),
    ],
)
def test_bad_constraints_name_the_field(options: dict[str, Any], where: str, reason: str) -> None:
    config = {"generation": {"num_beams": 2, "search": "constrained_beam_search", "search_options": options}}
    with pytest.raises(ConfigError) as caught:
        logitkit.Pipeline.from_config(config)
    assert any(where in p.path and reason in p.reason for p in caught.value.problems), str(caught.value)


def test_missing_options_are_a_config_error_at_generate() -> None:
    # The config check skips empty search_options, so the strategy reports them itself.
    with pytest.raises(ConfigError, match=r"generation\.search_options.*penalty_alpha"):
        logitkit.generate(model("llama"), torch.tensor([[5, 6, 7]]), None, max_new_tokens=2,
                          search="contrastive_search")  # fmt: skip


def test_low_memory_contrastive_runs_left_padded_batches_and_equals_the_batched_mode() -> None:
    # 4.55.4 raises IndexError here (FINDINGS); the two modes are one algorithm, so the ids agree.
    case = next(c for c in cases("contrastive") if c["name"] == "contrastive" and c["model"] == "llama")
    ids, mask = torch.tensor(case["input_ids"]), torch.tensor(case["attention_mask"])
    options = {"penalty_alpha": 0.6, "top_k": 4}
    common = dict(attention_mask=mask, max_new_tokens=10, search="contrastive_search")
    low = logitkit.generate(
        model("llama"), ids, None, search_options={**options, "low_memory": True}, **common
    )
    assert low.sequences.tolist() == case["sequences"]


def test_contrastive_with_alpha_zero_is_greedy() -> None:
    ids = torch.tensor(cases("greedy")[0]["input_ids"])
    mask = torch.tensor(cases("greedy")[0]["attention_mask"])
    greedy = logitkit.generate(model("llama"), ids, None, attention_mask=mask, max_new_tokens=8)
    contrastive = logitkit.generate(
        model("llama"), ids, None, attention_mask=mask, max_new_tokens=8,
        search="contrastive_search", search_options={"penalty_alpha": 0.0, "top_k": 3},
    )  # fmt: skip
    assert torch.equal(greedy.sequences, contrastive.sequences)


def test_dola_refuses_encoder_decoders_and_plain_callables_by_name() -> None:
    ids = torch.tensor([[5, 6, 7]])
    with pytest.raises(ValueError, match="decoder-only"):
        logitkit.generate(model("t5"), ids, None, max_new_tokens=2, search="dola",
                          search_options={"dola_layers": "low"})  # fmt: skip
    with pytest.raises(ValueError, match="hidden states"):
        logitkit.generate(lambda i, m: torch.zeros(i.shape[0], 8), ids, None, max_new_tokens=2,
                          search="contrastive_search", search_options={"penalty_alpha": 0.5, "top_k": 2})  # fmt: skip


@pytest.mark.parametrize(
    ("dola_layers", "layers", "tied", "expected"),
    [
        ("low", 4, False, [0]),
        ("high", 4, False, [2]),
        ("low", 2, True, [1]),
        ("low", 32, True, list(range(2, 16, 2))),
        ("high", 32, True, list(range(16, 32, 2))),
        ("low", 48, True, list(range(2, 20, 2))),
        ("high", 48, False, list(range(28, 48, 2))),
        ([0, 3, 7, 9], 8, False, [0, 3, 7]),
    ],
)
def test_dola_candidate_layers_follow_4x(
    dola_layers: Any, layers: int, tied: bool, expected: list[int]
) -> None:
    assert premature_layers(dola_layers, layers, tied) == expected


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"penalty_alpha": 0.6, "top_k": 4}, {"search": "contrastive_search",
                                               "search_options": {"penalty_alpha": 0.6, "top_k": 4}}),
        ({"penalty_alpha": 0.6, "top_k": 4, "low_memory": True},
         {"search": "contrastive_search", "search_options": {"penalty_alpha": 0.6, "top_k": 4, "low_memory": True}}),
        ({"penalty_alpha": 0.6, "top_k": 1}, {}),  # 4.x: top_k must exceed 1
        ({"penalty_alpha": 0.6, "top_k": 4, "do_sample": True}, {}),  # 4.x: then it samples
        ({"dola_layers": "high"}, {"search": "dola", "search_options": {"dola_layers": "high"}}),
        ({"force_words_ids": [[3]], "num_beams": 2},
         {"search": "constrained_beam_search", "search_options": {"force_words_ids": [[3]]}}),
        ({"num_beams": 4, "num_beam_groups": 2}, {}),  # a generation setting already
    ],
)
def test_search_mode_follows_4x_get_generation_mode(fields: dict[str, Any], expected: dict[str, Any]) -> None:
    assert search_mode(fields) == expected


def test_search_mode_refuses_what_4x_refuses() -> None:
    with pytest.raises(SearchModeError, match="num_beams > 1"):
        search_mode({"force_words_ids": [[3]], "num_beams": 1})
    with pytest.raises(SearchModeError, match="one beam"):
        search_mode({"dola_layers": "low", "num_beams": 3})


def test_every_mode_case_goes_through_the_translation_without_keywords() -> None:
    # The pipeline alone carries the mode: its generation section names the strategy.
    for prefix, search in [("contrastive", "contrastive_search"), ("dola", "dola"),
                           ("constrained", "constrained_beam_search")]:  # fmt: skip
        for case in cases(prefix):
            assert pipeline_for(case).generation.search == search


def test_the_docs_constraints_example_is_a_valid_config() -> None:
    import re

    import yaml

    page = (Path(__file__).parents[1] / "docs" / "generation.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", page, re.DOTALL) if "constrained_beam_search" in b)
    pipe = logitkit.Pipeline.from_config(yaml.safe_load(block))
    assert pipe.generation.search == "constrained_beam_search"
    assert pipe.generation.search_options["constraints"][1] == {"disjunctive": [[50], [8, 9]]}


def test_convert_carries_the_modes_and_reports_what_4x_would_ignore() -> None:
    from logitkit.formats.generation_config import from_generation_config

    carried = from_generation_config({"penalty_alpha": 0.6, "top_k": 4, "low_memory": True})
    assert carried.lossless, carried.report()
    assert carried.value["generation"]["search_options"] == {"penalty_alpha": 0.6, "top_k": 4, "low_memory": True}
    ignored = from_generation_config({"penalty_alpha": 0.6, "top_k": 4, "do_sample": True, "low_memory": True})
    assert {loss.parameter for loss in ignored.lost} == {"penalty_alpha", "low_memory"}
    refused = from_generation_config({"force_words_ids": [[3]], "num_beams": 1})
    assert any("num_beams > 1" in loss.reason for loss in refused.lost)
