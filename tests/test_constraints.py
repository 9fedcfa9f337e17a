"""The output constraints (json_schema, regex, grammar, choice) on the shipped demo model and llguidance."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch
from _generation_helpers import demo_codec as codec
from _generation_helpers import demo_model as model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llguidance import LLMatcher

import logitkit
from logitkit import ConfigError, EmptyRowError, Pipeline, TokenSettings
from logitkit.testing import check_row_contract
from logitkit_builtins import _llguidance as backend

EOS = 0


def prompt(text: str = "def f():") -> torch.Tensor:
    return torch.tensor([codec().encode(text)])


def run(processors: list[Any], rows: int = 3, max_new_tokens: int = 48, **settings: Any) -> list[list[int]]:
    """Generated ids per row (eos included), from ``logitkit.generate`` on the demo model."""
    pipe = Pipeline.from_config({"processors": processors}, tokenizer=codec().tokenizer)
    ids = prompt()
    out = logitkit.generate(model(), ids.repeat(rows, 1), pipe, max_new_tokens=max_new_tokens, eos_token_id=EOS, **settings)
    return [row for row in out.sequences[:, ids.shape[1] :].tolist()]


def completed(row: list[int]) -> str | None:
    """The text of a row that ended with eos; None when it hit the length limit."""
    if EOS not in row:
        return None
    return str(codec().decode(row[: row.index(EOS)]))


# -- generated schemas and regexes ----------------------------------------------------

leaf_schemas = st.one_of(
    st.builds(lambda hi: {"type": "integer", "minimum": 0, "maximum": hi}, st.integers(1, 10_000)),
    st.builds(lambda n: {"type": "string", "maxLength": n}, st.integers(1, 10)),
    st.just({"type": "boolean"}),
    st.builds(lambda xs: {"enum": xs}, st.lists(st.sampled_from(["a", "bc", "x_y", 1, 2, True]), min_size=1, max_size=4, unique=True)),
    st.builds(lambda n: {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9}, "maxItems": n}, st.integers(0, 4)),
)
names = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)
object_schemas = st.dictionaries(names, leaf_schemas, min_size=1, max_size=4).map(
    lambda props: {"type": "object", "properties": props, "required": sorted(props), "additionalProperties": False}
)
regexes = st.one_of(
    st.builds(lambda a, b: f"[a-z_][a-z0-9_]{{{a},{a + b}}}", st.integers(0, 6), st.integers(0, 6)),
    st.builds(lambda n: f"[0-9]{{1,{n}}}(\\.[0-9]{{1,2}})?", st.integers(1, 5)),
    st.builds(lambda words: "(" + "|".join(words) + ")", st.lists(st.text(alphabet="abcxyz", min_size=1, max_size=5), min_size=1, max_size=4)),
    st.builds(lambda n: f"(get|set)_[a-z]{{1,{n}}}\\(\\)", st.integers(1, 6)),
)

DEMO = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


@DEMO
@given(object_schemas)
def test_every_completed_output_validates_against_its_schema(schema: dict[str, Any]) -> None:
    rows = run([{"json_schema": schema}], rows=2)
    texts = [completed(r) for r in rows]
    assert any(t is not None for t in texts), rows  # the bounded schemas finish within the limit
    for text in texts:
        if text is not None:
            jsonschema.validate(json.loads(text), schema)


@DEMO
@given(regexes)
def test_every_completed_output_matches_its_regex(pattern: str) -> None:
    texts = [completed(r) for r in run([{"regex": pattern}], rows=2, max_new_tokens=32)]
    assert any(t is not None for t in texts)
    for text in texts:
        if text is not None:
            assert re.fullmatch(pattern, text), (pattern, text)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(object_schemas, regexes)
def test_hot_sampling_after_the_constraint_stays_valid(schema: dict[str, Any], pattern: str) -> None:
    """temperature 1.5 and top_k 1000 after the constraint still only choose among allowed tokens."""
    hot = [{"temperature": 1.5}, {"top_k": 1000}]
    for text in (completed(r) for r in run([{"json_schema": schema}, *hot], rows=4, seed=7)):
        if text is not None:
            jsonschema.validate(json.loads(text), schema)
    for text in (completed(r) for r in run([{"regex": pattern}, *hot], rows=4, seed=7, max_new_tokens=32)):
        if text is not None:
            assert re.fullmatch(pattern, text), (pattern, text)


def beam_texts(processor: dict[str, Any], max_new_tokens: int) -> list[str | None]:
    """Each returned beam's text when it finished with the ``constraint`` reason, else None."""
    pipe = Pipeline.from_config({"processors": [processor]}, tokenizer=codec().tokenizer)
    ids = prompt()
    out = logitkit.generate(model(), ids, pipe, max_new_tokens=max_new_tokens, eos_token_id=EOS,
                            num_beams=2, num_return_sequences=2)  # fmt: skip
    rows = out.sequences[:, ids.shape[1] :].tolist()
    for row, reason in zip(rows, out.finish_reasons, strict=True):
        assert (reason == "constraint") == (EOS in row), (reason, row)
    return [completed(row) for row in rows]


BEAM = settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
# Short outputs keep beam search cheap: objects of one or two of the generated properties.
small_object_schemas = st.dictionaries(names, leaf_schemas, min_size=1, max_size=2).map(
    lambda props: {"type": "object", "properties": props, "required": sorted(props), "additionalProperties": False}
)


@BEAM
@given(small_object_schemas)
def test_beam_search_outputs_validate_against_generated_schemas(schema: dict[str, Any]) -> None:
    texts = beam_texts({"json_schema": schema}, max_new_tokens=40)
    assert any(t is not None for t in texts)
    for text in texts:
        if text is not None:
            jsonschema.validate(json.loads(text), schema)


@BEAM
@given(regexes)
def test_beam_search_outputs_match_generated_regexes(pattern: str) -> None:
    texts = beam_texts({"regex": pattern}, max_new_tokens=24)
    assert any(t is not None for t in texts)
    for text in texts:
        if text is not None:
            assert re.fullmatch(pattern, text), (pattern, text)


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 8}, "n": {"type": "integer", "minimum": 0, "maximum": 99}},
    "required": ["name", "n"],
    "additionalProperties": False,
}


def test_beam_search_forks_the_parsers_and_stays_valid() -> None:
    rows = run([{"json_schema": SCHEMA}], rows=1, num_beams=4, num_return_sequences=4)
    texts = [completed(r) for r in rows]
    assert all(t is not None for t in texts), rows
    assert len(set(texts)) > 1  # the beams really diverged, each with its own parser
    for text in texts:
        jsonschema.validate(json.loads(str(text)), SCHEMA)


def test_choice_and_grammar_on_the_demo_model() -> None:
    choices = ["yes", "no", "maybe"]
    for text in (completed(r) for r in run([{"choice": choices}, {"temperature": 1.5}], rows=6, seed=1)):
        assert text in choices
    grammar = 'start: NAME "(" NAME? ")"\nNAME: /[a-z_]{1,6}/'
    for text in (completed(r) for r in run([{"grammar": grammar}], rows=2)):
        assert text is not None and re.fullmatch(r"[a-z_]{1,6}\([a-z_]{0,6}\)", text), text


def test_transformers_generate_with_as_hf() -> None:
    pipe = Pipeline.from_config({"processors": [{"json_schema": SCHEMA}]}, tokenizer=codec().tokenizer)
    ids = prompt().repeat(2, 1)
    out = model().generate(
        ids, attention_mask=torch.ones_like(ids), logits_processor=pipe.as_hf(), do_sample=False,
        max_new_tokens=48, eos_token_id=EOS, pad_token_id=EOS,
    )
    for row in out[:, ids.shape[1] :].tolist():
        text = completed(row)
        assert text is not None, row
        jsonschema.validate(json.loads(text), SCHEMA)


def test_the_mask_is_exactly_the_tokens_llguidance_accepts() -> None:
    """Differential: each allowed token is one llguidance's matcher accepts one by one, and no other."""
    tok = backend.ll_tokenizer(codec().tokenizer, [EOS])
    pipe = Pipeline.from_config({"processors": [{"json_schema": SCHEMA}]}, tokenizer=codec().tokenizer)
    history = codec().encode('{"name":"ab')[1:]  # the codec's bos is not part of the output
    ids = torch.cat([prompt(), torch.tensor([history])], dim=1)
    state = pipe.start(ids, steps=len(history))
    vocab = 4096
    scores = state(ids, torch.zeros(1, vocab))
    reference = LLMatcher(tok, backend.json_schema_grammar(SCHEMA, whitespace=False))
    assert reference.consume_tokens(history)
    accepted = [t for t in range(vocab) if reference.validate_tokens([t]) == 1]
    assert (scores[0] > float("-inf")).nonzero().flatten().tolist() == accepted


def test_a_transformers_tokenizer_gives_the_same_masks_as_the_raw_one() -> None:
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(tokenizer_object=codec().tokenizer, eos_token="<|endoftext|>")
    ids = prompt().repeat(2, 1)
    scores = torch.randn(2, 4096, generator=torch.Generator().manual_seed(0))
    out = []
    for tokenizer in (codec().tokenizer, wrapped):
        pipe = Pipeline.from_config({"processors": [{"regex": "[a-z]{2,5}"}]}, tokenizer=tokenizer)
        out.append(pipe(ids, scores))
    assert torch.equal(out[0], out[1])
    assert 0 < int((out[0][0] > float("-inf")).sum()) < 4096


@pytest.mark.parametrize(
    "config",
    [{"json_schema": SCHEMA}, {"regex": "[a-z_]{1,5}"}, {"grammar": 'start: "x" /[0-9]{1,3}/'}, {"choice": ["alpha", "beta", "gamma"]}],
    ids=lambda c: next(iter(c)),
)
def test_row_contract_with_a_tokenizer(config: dict[str, Any]) -> None:
    """Alone, staggered, under continuous batching and in threads, the masks agree bit for bit."""
    entry = logitkit.registry().processors[next(iter(config))]
    check_row_contract(
        entry.cls, config, tokens=TokenSettings(eos=[EOS]), context={"tokenizer": codec().tokenizer},
        vocab=4096, requests=4, threads=2,
    )


def test_a_constraint_emptied_by_an_earlier_processor_is_an_error_naming_it() -> None:
    ids = prompt()
    alone = Pipeline.from_config({"processors": [{"choice": ["yes", "no"]}]}, tokenizer=codec().tokenizer)
    allowed = (alone(ids, torch.zeros(1, 4096))[0] > float("-inf")).nonzero().flatten().tolist()
    pipe = Pipeline.from_config(
        {"processors": [{"suppress_tokens": allowed}, {"choice": ["yes", "no"]}]}, tokenizer=codec().tokenizer
    )
    with pytest.raises(EmptyRowError, match="choice"):
        pipe.next_tokens(ids, torch.zeros(1, 4096))


def test_a_missing_tokenizer_is_named() -> None:
    pipe = Pipeline.from_config({"processors": [{"regex": "[a-z]+"}]})
    with pytest.raises(Exception, match="regex needs a tokenizer"):
        pipe(prompt(), torch.zeros(1, 4096))


BAD = {
    "regex": ("[a-z", "processors[0].regex: invalid regex"),
    "grammar": ("start: foo\nfoo: 'a' |", "processors[0].grammar: line 2, column 6"),
    "json_schema": ({"type": "array", "uniqueItems": True}, "processors[0].json_schema: schema not enforceable: Unimplemented keys"),
    "choice": ([], "processors[0].choice"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_constraints_are_config_errors_with_the_field_path(name: str) -> None:
    value, expected = BAD[name]
    with pytest.raises(ConfigError) as err:
        Pipeline.from_config({"processors": [{name: value}]})
    assert expected in str(err.value)


def test_validate_reports_each_bad_constraint_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"processors": [{n: v} for n, (v, _) in sorted(BAD.items())]}))
    code = "import sys; from logitkit.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, "validate", str(path)], capture_output=True, text=True)
    assert done.returncode == 2
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(lines) == len(BAD), lines
    assert "Traceback" not in done.stderr
    for i, (_, (_, expected)) in enumerate(sorted(BAD.items())):
        assert any(expected.replace("processors[0]", f"processors[{i}]") in line for line in lines), lines


def test_on_empty_row_comes_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "strict.yaml"
    path.write_text("on_empty_row: error\nprocessors:\n  - suppress_tokens: [0, 1, 2]\n")
    pipe = Pipeline.from_config(path)
    assert pipe.on_empty_row == "error"
    with pytest.raises(EmptyRowError, match="suppress_tokens"):
        pipe.next_tokens(torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 3))
    assert Pipeline.from_config(path, on_empty_row="top").on_empty_row == "top"  # the keyword wins
    with pytest.raises(ConfigError, match="on_empty_row: must be one of top, error"):
        Pipeline.from_config({"on_empty_row": "drop"})


def test_openai_response_format_converts_to_the_constraint_and_back() -> None:
    from logitkit.formats import from_openai, to_openai

    request = {"temperature": 0.5, "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA, "strict": True}}}
    there = from_openai(request)
    assert there.lossless
    pipe = Pipeline.from_config(there.value, tokenizer=codec().tokenizer)
    assert [p.name for p in pipe.processors] == ["json_schema", "temperature"]  # the constraint runs first
    assert pipe.processors[0].config.json_schema == SCHEMA
    back = to_openai(there.value)
    assert back.lossless
    assert back.value["response_format"]["json_schema"]["schema"] == SCHEMA
    assert back.value["temperature"] == 0.5
    any_object = from_openai({"response_format": {"type": "json_object"}})
    # Nothing samples, so the chain is greedy: OpenAI gets temperature 0, not its default of 1.
    assert to_openai(any_object.value).value == {"response_format": {"type": "json_object"}, "temperature": 0}
    assert from_openai({"response_format": {"type": "text"}}).value == {"processors": []}
    assert [loss.parameter for loss in from_openai({"response_format": {"type": "xml"}}).lost] == ["response_format"]
    assert [loss.parameter for loss in to_openai({"processors": [{"regex": "a+"}]}).lost] == ["processors.regex"]


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_the_cli_writes_constrained_output_on_the_demo_model(capsys: pytest.CaptureFixture[str]) -> None:
    """`logitkit generate` holds a raw tokenizers.Tokenizer: the constraints work with it too."""
    from logitkit.cli import main

    assert main(["generate", "-c", str(EXAMPLES / "structured-json.yaml"), "--seed", "1", "def f():"]) == 0
    text = capsys.readouterr().out.strip()
    assert text.startswith("def f():")
    schema = Pipeline.from_config(EXAMPLES / "structured-json.yaml").processors[0].config.json_schema
    jsonschema.validate(json.loads(text[len("def f():") :]), schema)
    assert main(["generate", "-c", str(EXAMPLES / "structured-identifier.yaml"), "def "]) == 0
    assert re.fullmatch(r"def [a-z_][a-z0-9_]{2,15}", capsys.readouterr().out.strip())
