"""The fuzz harness: hypothesis over config documents and over scores for every registered element.

In CI each test draws a bounded number of examples (the same ones every run). A long run
draws new ones on each run and many more of them::

    LOGITKIT_FUZZ_EXAMPLES=20000 python -m pytest -q -p no:cacheprovider tests/test_fuzz.py

``LOGITKIT_FUZZ_EXAMPLES`` is the number of config documents, the number of pipeline cases,
and the number of single-element cases shared out over every processor and selector.
docs/reliability.md records the figures of the last long run.

What must hold:

- config documents (valid, broken, mangled text, any format): ``logitkit validate`` exits 0
  or 2 with no traceback, ``resolve`` raises nothing but ``ConfigError``, and a config that
  validates builds a pipeline whose first step raises nothing but a logitkit error;
- scores (every dtype, -inf patterns, whole -inf rows, NaN, extremes), through the contract kit
  for each processor and selector of every plugin, and through whole chains: no NaN or
  removed (-inf) token is selected, no token 0 comes back for a row with nothing left, the
  inputs are not modified, and nothing raises but a logitkit error.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import string
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_builtins_contract import CONFIGS, TOKENS

from logitkit.cli import main
from logitkit.config import resolve
from logitkit.errors import ConfigError
from logitkit.pipeline import Pipeline
from logitkit.registry import Registry
from logitkit.registry import registry as default_registry
from logitkit.testing import (
    ContractViolation,
    check_processor_case,
    check_selector_case,
    factory_for,
)
from logitkit.testing.strategies import StepCase, histories, logits

#: Examples per test in CI; a long run sets LOGITKIT_FUZZ_EXAMPLES.
CI_EXAMPLES = {"configs": 300, "pipelines": 300, "elements": 600}
LONG = os.environ.get("LOGITKIT_FUZZ_EXAMPLES", "")
EXAMPLES = {k: int(LONG) for k in CI_EXAMPLES} if LONG.isdigit() else CI_EXAMPLES
#: CI draws the same inputs on every run; a long run explores new ones.
DERANDOMIZE = not LONG.isdigit()

REGISTRY: Registry = default_registry()
CONTEXT: dict[str, Any] = {}


def fuzz_settings(examples: int) -> Any:
    return settings(
        max_examples=examples,
        derandomize=DERANDOMIZE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def is_logitkit_error(exc: BaseException) -> bool:
    """An exception logitkit defines (ConfigError, EmptyRowError, ...) and not the contract kit's verdict."""
    return type(exc).__module__.startswith("logitkit") and not isinstance(exc, ContractViolation)


# -- config documents ----------------------------------------------------------------------

_WORDS = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, -1, 2, 5, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**6, 10**7, 10**12]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e-46, 1e-300, 0.5, 1.0, 1.5, 1e5, 4.6e39, 1e308]),
    st.text(max_size=8),
    st.sampled_from(["0.7", "yes", "true", "nan", "-inf", "1e6"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.one_of(_WORDS, st.integers(-3, 2**64)), inner, max_size=3)
    ),
    max_leaves=8,
)


def _fields_of(name: str) -> list[str]:
    entry = REGISTRY.processors.get(name) or REGISTRY.selectors.get(name)
    return list(entry.cls.Config.model_fields) if entry else []


@st.composite
def processor_entries(draw: st.DrawFn) -> Any:
    """One ``processors:`` entry in any of its forms, with hostile values in its fields."""
    name = draw(st.one_of(st.sampled_from(sorted(REGISTRY.processors)), _WORDS))
    fields = [*_fields_of(name), "name", "stage", "bogus"]
    body = draw(st.dictionaries(st.sampled_from(fields), _VALUES, max_size=3))
    form = draw(st.sampled_from(("bare", "shorthand", "nested", "flat", "junk")))
    if form == "bare":
        return name
    if form == "shorthand":
        return {name: draw(_VALUES)}
    if form == "nested":
        return {name: body}
    if form == "flat":
        return {"name": name, **body}
    return draw(_VALUES)


_TOKENS = st.fixed_dictionaries(
    {},
    optional={
        "eos": st.one_of(_VALUES, st.lists(st.integers(-2, 70), max_size=3)),
        "bos": st.one_of(_SCALARS, st.integers(0, 70)),
        "pad": _SCALARS,
        "vocab_size": st.one_of(st.integers(0, 80), _SCALARS),
        "bogus": _SCALARS,
    },
)
_GENERATION = st.fixed_dictionaries(
    {},
    optional={
        "max_new_tokens": st.one_of(st.integers(0, 8), _SCALARS),
        "max_length": st.one_of(st.integers(0, 16), _SCALARS),
        "min_new_tokens": _SCALARS,
        "num_beams": st.one_of(st.integers(1, 4), _SCALARS),
        "num_return_sequences": _SCALARS,
        "num_beam_groups": _SCALARS,
        "search": st.one_of(st.sampled_from(sorted(REGISTRY.search_strategies)), _WORDS, _SCALARS),
        "bogus": _SCALARS,
    },
)


@st.composite
def config_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A config mapping: mostly the right shape, with hostile values and unknown keys."""
    doc = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "processors": st.one_of(st.lists(processor_entries(), max_size=5), _VALUES),
                "tokens": st.one_of(_TOKENS, _SCALARS),
                "generation": st.one_of(_GENERATION, _SCALARS),
                "selector": st.one_of(
                    st.sampled_from(sorted(REGISTRY.selectors)),
                    st.builds(lambda n, v: {n: v}, st.sampled_from(sorted(REGISTRY.selectors)), _VALUES),
                    _VALUES,
                ),
                "order": st.one_of(st.sampled_from(["listed", "staged", *sorted(REGISTRY.order_presets)]), _SCALARS),
                "preset": st.one_of(st.sampled_from(sorted(REGISTRY.config_presets) or ["none"]), _SCALARS),
                "processorz": _VALUES,
            },
        )
    )
    return doc


def _dump(doc: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, allow_nan=True, default=str)
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


@st.composite
def config_texts(draw: st.DrawFn) -> tuple[str, str]:
    """``(suffix, text)``: a dumped document, a mangled one, or arbitrary text."""
    kind = draw(st.sampled_from(("yaml", "json", "mangled", "text", "toml")))
    if kind == "text":
        return draw(st.sampled_from((".yaml", ".json", ".toml"))), draw(st.text(max_size=200))
    doc: Any = draw(config_documents())
    if kind == "toml":
        # A small TOML writer is not worth a dependency: TOML text from a JSON-ish body.
        body = "\n".join(f"{k} = {json.dumps(v, default=str)}" for k, v in doc.items() if not isinstance(v, dict))
        return ".toml", body
    fmt = "json" if kind == "json" else "yaml"
    text = _dump(doc, fmt)
    if kind == "mangled" and text:
        cut = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from(("", "{", "[", ": :", "&a [*a, *a]", "!!python/object:os.system", "\t", "\x00", "- *x")))
        text = text[:cut] + junk + text[cut + draw(st.integers(0, 3)) :]
    return (".json" if fmt == "json" else ".yaml"), text


def _first_step(pipe: Pipeline, vocab: int) -> None:
    ids = torch.tensor([[1, 2, 3, 1], [0, 0, 1, 2]]) % vocab
    scores = torch.randn(2, vocab, generator=torch.Generator().manual_seed(0))
    pipe.next_tokens(ids, scores)


@fuzz_settings(EXAMPLES["configs"])
@given(text=config_texts())
def test_config_documents_give_a_config_error_or_a_pipeline(text: tuple[str, str]) -> None:
    suffix, body = text
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz{suffix}"
        path.write_text(body, encoding="utf-8", errors="surrogatepass")
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(["validate", "-q", str(path)])
        assert code in (0, 2), (code, body)
        assert "Traceback" not in err.getvalue(), err.getvalue()
        try:
            resolved = resolve(path)
        except ConfigError as exc:
            assert code == 2, body
            assert all(p.source == str(path) for p in exc.problems), exc.problems
            return
        assert code == 0, (err.getvalue(), body)
    vocab = resolved.tokens.vocab_size or 64
    try:
        pipe = Pipeline.from_config(resolved, encoder_input_ids=torch.tensor([[1, 2, 3]]) % vocab)
        _first_step(pipe, vocab)
    except Exception as exc:
        if not is_logitkit_error(exc):
            raise AssertionError(f"valid config crashed: {type(exc).__name__}: {exc}\n{body}") from exc


# -- scores: every registered processor and selector ---------------------------------------


def _element_cases() -> list[Any]:
    """``(kind, name, factory)`` for every processor and selector of every plugin, each example config."""
    params = []
    for kind, entries in (("processor", REGISTRY.processors), ("selector", REGISTRY.selectors)):
        for name, entry in sorted(entries.items()):
            if getattr(entry.cls, "code_only", False) or name == "multinomial":
                continue  # multinomial uses torch's global RNG: not row-independent by design
            if "tokenizer" in getattr(entry.cls, "needs", ()):
                continue  # the output constraints need a real tokenizer: tests/test_constraints.py fuzzes them
            configs = CONFIGS.get(name, {}) if entry.plugin == "builtins" else {}
            for i, config in enumerate(configs if isinstance(configs, list) else [configs]):
                try:
                    make = factory_for(entry.cls, config, TOKENS)
                    make()
                except Exception:  # a third-party element that needs a config we cannot guess
                    continue
                params.append(pytest.param(kind, make, id=f"{entry.plugin}.{name}-{i}"))
    return params


ELEMENT_CASES = _element_cases()


@st.composite
def hostile_cases(draw: st.DrawFn, *, whole_row: bool = True, nan: bool = False) -> StepCase:
    """A step case whose scores may hold whole -inf rows (and NaN for pipelines)."""
    dtypes = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
    scores = draw(logits(batch=(1, 4), vocab=(1, 48), dtypes=dtypes, whole_row_neg_inf=whole_row, allow_nan=nan))
    ids, prompt = draw(histories(batch=scores.shape[0], vocab=scores.shape[1], length=(1, 12)))
    seeds = draw(st.lists(st.integers(0, 2**62), min_size=scores.shape[0], max_size=scores.shape[0], unique=True))
    return StepCase(scores, ids, prompt, torch.tensor(seeds, dtype=torch.int64))


@pytest.mark.parametrize(("kind", "make"), ELEMENT_CASES)
def test_every_element_keeps_its_contract_on_hostile_scores(kind: str, make: Any) -> None:
    check = check_processor_case if kind == "processor" else check_selector_case
    examples = max(5, -(-EXAMPLES["elements"] // len(ELEMENT_CASES)))  # ceil: the total reaches the count

    @fuzz_settings(examples)
    @given(case=hostile_cases(whole_row=kind == "processor"))
    def run(case: StepCase) -> None:
        try:
            check(make, case, CONTEXT)
        except Exception as exc:
            if not is_logitkit_error(exc):
                raise

    run()


def test_every_plugin_is_fuzzed() -> None:
    """Third-party elements are in the harness too, not only the built-ins."""
    plugins = {p.id.split(".")[0] for p in ELEMENT_CASES}
    assert "builtins" in plugins and len(plugins) > 1, plugins


# -- scores: whole chains ------------------------------------------------------------------

_PROCESSORS = [p for p in ELEMENT_CASES if p.values[0] == "processor"]
_SELECTORS = [p for p in ELEMENT_CASES if p.values[0] == "selector"]


def without_nan(row: torch.Tensor) -> torch.Tensor:
    """NaN as -inf (a removed token); unlike nan_to_num, -inf and +inf stay infinite."""
    return row.masked_fill(torch.isnan(row), float("-inf"))


def _check_choice(processed: torch.Tensor, raw: torch.Tensor, chosen: torch.Tensor, note: str) -> None:
    assert chosen.dtype == torch.long and chosen.shape == (raw.shape[0],), note
    assert bool(((chosen >= 0) & (chosen < raw.shape[-1])).all()), note
    for row, token in enumerate(chosen.tolist()):
        kept = without_nan(processed[row])
        raw_row = raw[row].double()
        if bool(torch.isfinite(kept).any() | torch.isposinf(kept).any()):
            # NaN counts as removed here; a forced token may be NaN in the raw logits, so only the processed score counts.
            assert not bool(torch.isneginf(kept[token])), f"row {row}: NaN or removed token {token} selected; {note}"
        else:  # nothing left: only the model's own top token may come back, never a silent 0
            top = without_nan(raw_row)
            assert bool(top[token] == top.max()) and bool(top.max() > float("-inf")), (
                f"row {row}: empty row gave token {token}, not the model's top; {note}"
            )


@fuzz_settings(EXAMPLES["pipelines"])
@given(data=st.data(), case=hostile_cases(nan=True))
def test_chains_select_a_live_token_or_raise_a_logitkit_error(data: st.DataObject, case: StepCase) -> None:
    chosen_procs = data.draw(st.lists(st.sampled_from(_PROCESSORS), max_size=4, unique_by=lambda p: p.id))
    selector_param = data.draw(st.sampled_from(_SELECTORS))
    fast = data.draw(st.booleans())
    policy = data.draw(st.sampled_from(("top", "error")))
    note = f"chain {[p.id for p in chosen_procs]} -> {selector_param.id}, fast_path={fast}, on_empty_row={policy}"
    pipe = Pipeline(
        [p.values[1]() for p in chosen_procs],
        selector_param.values[1](),
        tokens=TOKENS,
        # Seeded, so a random element (xtc's coin) draws the same in both calls below; unseeded
        # it draws afresh in each, and the first call's scores would not describe the second's pick.
        seeds=case.seeds,
        fast_path=fast,
        on_empty_row=policy,
    )
    scores, ids = case.scores.clone(), case.input_ids.clone()
    try:
        processed = pipe.replace(fast_path=False)(ids, scores)
        chosen = pipe.next_tokens(ids, scores)
    except Exception as exc:
        if not is_logitkit_error(exc):
            raise AssertionError(f"{type(exc).__name__}: {exc}; {note}") from exc
        return
    finally:
        assert torch.equal(ids, case.input_ids), f"input_ids modified; {note}"
        assert torch.equal(scores.nan_to_num(nan=7.0), case.scores.nan_to_num(nan=7.0)), f"scores modified; {note}"
    _check_choice(processed, scores, chosen, note)

