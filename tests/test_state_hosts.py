"""Per-sequence state in every host: threads, reuse inside transformers, beams, continuous batching.

Each test runs the host beside a private or fresh pipeline on the same inputs
and asks for the same tokens.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from _generation_helpers import tiny_gpt2, tiny_llama
from lk_cooldown import Cooldown, HistoryHash, HistoryList
from transformers import GenerationConfig

import logitkit
from logitkit import Pipeline, RowStateError
from logitkit.demo import load_codec, load_model
from logitkit.registry import build_registry
from logitkit.testing import ScriptedModel, continuous_batching_run, solo_run
from logitkit.testing.rows import Request

REG = build_registry(env={})

# -- threads -----------------------------------------------------------------------------

STATELESS = {
    "processors": [{"repetition_penalty": 1.1}, {"temperature": 0.8}, {"top_k": 50}, {"top_p": 0.9}],
    "selector": "sample",
}
STATEFUL = {
    "processors": [{"name": "xtc", "probability": 0.5, "threshold": 0.05}, {"temperature": 0.9}],
    "selector": {"name": "mirostat_v2", "tau": 3.0},
}
PROMPTS = ["def f(x):", "import os", "class Point:", "for i in range("]


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[Any, Any]]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one intra-op thread per caller
    yield load_model(), load_codec()
    torch.set_num_threads(threads)


@pytest.mark.parametrize("config", [STATELESS, STATEFUL], ids=["stateless", "stateful"])
def test_threads_sharing_one_pipeline_get_a_private_pipelines_tokens(
    demo: tuple[Any, Any], config: dict[str, Any]
) -> None:
    model, codec = demo
    prompts = [torch.tensor([codec.encode(p)]) for p in PROMPTS]

    def run(pipe: Pipeline, i: int, run_index: int) -> list[int]:
        out = logitkit.generate(model, prompts[i], pipe, max_new_tokens=8, seeds=[run_index * 10 + i])
        return out.new_tokens[0].tolist()

    runs = 20
    expected = {
        (r, i): run(Pipeline.from_config(config), i, r) for r in range(runs) for i in range(4)
    }
    shared = Pipeline.from_config(config)
    wrong: list[tuple[int, int]] = []
    for r in range(runs):
        got: dict[int, list[int] | BaseException] = {}
        barrier = threading.Barrier(4)

        def work(i: int, r: int = r, got: dict[int, Any] = got, barrier: Any = barrier) -> None:
            barrier.wait()
            try:
                got[i] = run(shared, i, r)
            except BaseException as exc:
                got[i] = exc

        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wrong.extend((r, i) for i in range(4) if got[i] != expected[(r, i)])
    assert wrong == [], f"{len(wrong)} of {runs * 4} thread runs differ from a private pipeline: {wrong}"
    # Different seeds gave different text: the comparison above can fail.
    assert len({tuple(v) for v in expected.values()}) > 4


def test_a_pipeline_has_no_state_to_share() -> None:
    pipe = Pipeline.from_config(STATEFUL)
    with pytest.raises(AttributeError, match="immutable"):
        pipe.fast_path = False  # type: ignore[misc]
    assert pipe.replace(fast_path=False).fast_path is False
    assert pipe.fast_path is True


# -- reuse inside transformers' generate() ---------------------------------------------


def _hf_case(case: str, suppress: list[int]) -> Any:
    if case == "begin_suppress_tokens":
        return [{"begin_suppress_tokens": suppress}]
    if case == "cooldown":
        return Pipeline([Cooldown(Cooldown.Config(steps=4))], REG.selectors["greedy"].cls())
    return [{"watermarking": {"bias": 6.0}}]


@pytest.mark.parametrize("case", ["begin_suppress_tokens", "cooldown", "greenlist"])
@pytest.mark.parametrize("same_list", [False, True], ids=["as_hf-per-call", "one-list"])
def test_one_pipeline_reused_across_generate_calls_gives_fresh_tokens(case: str, same_list: bool) -> None:
    model = tiny_gpt2()  # it repeats itself, so the cooldown has something to ban
    gen = torch.Generator().manual_seed(4)
    common: dict[str, Any] = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": 0}

    def plain(ids: torch.Tensor) -> torch.Tensor:
        return model.generate(ids, attention_mask=torch.ones_like(ids), generation_config=GenerationConfig(**common))

    prompts = [torch.randint(3, 90, (2, 3), generator=gen), torch.randint(3, 90, (2, 9), generator=gen)]
    # Suppress what the model would say first, so suppressing at the wrong step shows.
    suppress = sorted({int(t) for p in prompts for t in plain(p)[:, p.shape[1]]})
    config = _hf_case(case, suppress)

    def build() -> Pipeline:
        return config if isinstance(config, Pipeline) else Pipeline.from_config(config)

    pipe = build()
    shared_list = pipe.as_hf()
    outputs: list[torch.Tensor] = []
    changed = []
    for call in range(3):
        # The third prompt is the second call's output: lengths alone cannot tell a new call.
        ids = prompts[call] if call < 2 else outputs[1]
        processors = shared_list if same_list else pipe.as_hf()
        got = model.generate(ids, attention_mask=torch.ones_like(ids), logits_processor=processors,
                             generation_config=GenerationConfig(**common))  # fmt: skip
        fresh = model.generate(ids, attention_mask=torch.ones_like(ids), logits_processor=build().as_hf(),
                               generation_config=GenerationConfig(**common))  # fmt: skip
        assert torch.equal(got, fresh), f"call {call}"
        changed.append(not torch.equal(got, plain(ids)))
        outputs.append(got)
    assert changed[:2] == [True, True], "the processor changed nothing; the test would prove nothing"


@pytest.mark.parametrize("checker_cls", [HistoryHash, HistoryList], ids=["tensor-state", "object-state"])
def test_hf_beam_search_reorders_the_row_state_by_history(checker_cls: type) -> None:
    model = tiny_gpt2()
    checker = checker_cls()
    pipe = Pipeline([checker, Cooldown(Cooldown.Config(steps=2))], None)
    ids = torch.randint(3, 90, (2, 4), generator=torch.Generator().manual_seed(1))
    model.generate(ids, attention_mask=torch.ones_like(ids), logits_processor=pipe.as_hf(),
                   generation_config=GenerationConfig(max_new_tokens=8, num_beams=3, do_sample=False,
                                                      pad_token_id=0, early_stopping=True))  # fmt: skip
    assert len(checker.checks) >= 2 * 3 * 6
    assert all(checker.checks)


# -- logitkit's beam searches -------------------------------------------------------------


@pytest.mark.parametrize("checker_cls", [HistoryHash, HistoryList], ids=["tensor-state", "object-state"])
@pytest.mark.parametrize(
    "settings",
    [{"num_beams": 3}, {"num_beams": 4, "num_beam_groups": 2, "diversity_penalty": 0.5}],
    ids=["beam", "group_beam"],
)
def test_row_state_follows_the_beams(settings: dict[str, Any], checker_cls: type) -> None:
    model = tiny_llama()
    checker = checker_cls()
    pipe = Pipeline([checker, Cooldown(Cooldown.Config(steps=2))], REG.selectors["greedy"].cls())
    ids = torch.randint(3, 90, (2, 5), generator=torch.Generator().manual_seed(3))
    out = logitkit.generate(model, ids, pipe, max_new_tokens=8, eos_token_id=[], **settings)
    assert out.new_tokens.shape[1] == 8
    rows = 2 * settings["num_beams"]
    assert len(checker.checks) == rows * 8
    assert all(checker.checks), f"{checker.checks.count(False)} of {len(checker.checks)} rows lost their history"


def test_a_processor_that_cannot_follow_rows_is_refused_by_beam_search() -> None:
    model = tiny_llama()
    pipe = Pipeline.from_config([{"guidance_scale": 1.5}], model=model)
    ids = torch.randint(3, 90, (1, 4), generator=torch.Generator().manual_seed(3))
    with pytest.raises(RowStateError, match="guidance_scale"):
        logitkit.generate(model, ids, pipe, max_new_tokens=3, num_beams=2)
    # Plain decoding runs it.
    assert logitkit.generate(model, ids, pipe, max_new_tokens=3).new_tokens.shape == (1, 3)


# -- continuous batching, every built-in and contrib processor ---------------------------


def _every_processor() -> list[tuple[str, dict[str, Any]]]:
    from test_builtins_contract import CONFIGS as BUILTIN_CONFIGS

    configs: dict[str, Any] = {
        **BUILTIN_CONFIGS,  # the samplers of other engines included (logitkit_builtins.engines)
        "logit_softcap": {"cap": 5.0},
        "remove_invalid_values": {},
        "renormalize_logits": {},
        "greedy": {},
    }
    configs["watermarking"] = [*configs["watermarking"], {"scheme": "synthid", "keys": [3, 7, 11], "ngram_len": 3}]
    cases = []
    for name, value in sorted(configs.items()):
        for config in value if isinstance(value, list) else [value]:
            cases.append((name, config))
    return cases


def test_every_registered_processor_has_a_case() -> None:
    from test_builtins_contract import (
        CONSTRAINTS,  # row contract with a tokenizer: tests/test_constraints.py
    )

    names = {n for n, e in REG.processors.items() if not e.cls.code_only} - set(CONSTRAINTS)
    assert names <= {n for n, _ in _every_processor()}


@pytest.mark.parametrize(("name", "config"), _every_processor(), ids=lambda v: v if isinstance(v, str) else "")
def test_continuous_batching_equals_each_row_alone(name: str, config: dict[str, Any]) -> None:
    tokens = logitkit.TokenSettings(eos=[1], bos=0)
    if name in REG.selectors:
        pipe = Pipeline([], REG.selectors[name].cls(REG.selectors[name].cls.Config(**config), tokens), tokens=tokens)
    else:
        entry = REG.processors[name]
        pipe = Pipeline([entry.cls(entry.cls.Config(**config), tokens)], REG.selectors["sample"].cls(), tokens=tokens)
    model = ScriptedModel(48, seed=5)
    rng = random.Random(7)
    requests = [
        Request(tuple(rng.randrange(6) for _ in range(rng.randint(1, 7))), rng.randint(4, 10), rng.randrange(2**31))
        for _ in range(10)
    ]
    if not all(e.follows_rows for e in pipe.elements):
        with pytest.raises(RowStateError, match=name):
            continuous_batching_run(pipe, requests, model, {}, rng)
        return
    alone = [solo_run(pipe, r, model, {}) for r in requests]
    batched = continuous_batching_run(pipe, requests, model, {}, rng)
    for r, (want, got) in enumerate(zip(alone, batched, strict=True)):
        for step, ((s1, t1), (s2, t2)) in enumerate(zip(want, got, strict=True)):
            assert t1 == t2, (r, step)
            assert torch.equal(torch.nan_to_num(s1), torch.nan_to_num(s2)), (r, step)


def test_object_row_state_follows_continuous_batching() -> None:
    checker = HistoryList()
    pipe = Pipeline([checker], REG.selectors["sample"].cls())
    rng = random.Random(3)
    requests = [Request((rng.randrange(6),) * rng.randint(1, 5), rng.randint(3, 8), i) for i in range(12)]
    model = ScriptedModel(48, seed=2)
    alone = [solo_run(pipe, r, model, {}) for r in requests]
    assert [[t for _, t in run] for run in continuous_batching_run(pipe, requests, model, {}, rng)] == [
        [t for _, t in run] for run in alone
    ]
    assert len(checker.checks) > 100 and all(checker.checks)
