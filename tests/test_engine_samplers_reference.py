"""Each sampler against its reference definition, on inputs small enough to check by hand."""

from __future__ import annotations

import math

import pytest
import torch

from logitkit import Pipeline, StepContext
from logitkit_builtins.engines.bias import AllowedTokenIds, LogitBias
from logitkit_builtins.engines.dry import Dry
from logitkit_builtins.engines.mirostat import Mirostat, MirostatV2
from logitkit_builtins.engines.penalties import FrequencyPenalty, PresencePenalty
from logitkit_builtins.engines.temperature import DynamicTemperature, QuadraticSmoothing
from logitkit_builtins.engines.truncation import TailFree, TopA, TopNSigma
from logitkit_builtins.engines.xtc import Xtc

INF = float("inf")


def make(cls, **fields):
    return cls(cls.Config(**fields))


def ctx(
    ids: list[list[int]], prompt_length: int = 1, seeds: list[int] | None = None
) -> StepContext:
    input_ids = torch.tensor(ids)
    return StepContext(
        input_ids=input_ids,
        prompt_lengths=prompt_length,
        steps=input_ids.shape[-1] - prompt_length,
        seeds=None if seeds is None else torch.tensor(seeds),
    )


def test_frequency_and_presence_count_generated_tokens_only() -> None:
    scores = torch.zeros(1, 4)
    history = ctx(
        [[2, 2, 1, 1, 3]], prompt_length=2
    )  # generated: 1, 1, 3; the prompt's 2s do not count
    freq = make(FrequencyPenalty, frequency_penalty=0.5).apply(scores, history)
    pres = make(PresencePenalty, presence_penalty=0.5).apply(scores, history)
    assert freq.tolist() == [[0.0, -1.0, 0.0, -0.5]]
    assert pres.tolist() == [[0.0, -0.5, 0.0, -0.5]]


def test_logit_bias_and_allowed_token_ids() -> None:
    scores = torch.tensor([[1.0, 2.0, 3.0]])
    out = make(LogitBias, logit_bias={"0": 10, 2: -100}).apply(scores, ctx([[0]]))
    assert out.tolist() == [[11.0, 2.0, -97.0]]
    allowed = make(AllowedTokenIds, allowed_token_ids=[1]).apply(scores, ctx([[0]]))
    assert allowed.tolist() == [[-INF, 2.0, -INF]]
    # Ids past the vocabulary are dropped at run time, as docs/reliability.md says (issue 15, item 8).
    assert make(LogitBias, logit_bias={7: 1.0, 1: 1.0}).apply(scores, ctx([[0]])).tolist() == [[1.0, 3.0, 3.0]]
    beyond = make(AllowedTokenIds, allowed_token_ids=[1, 3, 2**63 - 1]).apply(scores, ctx([[0]]))
    assert beyond.tolist() == [[-INF, 2.0, -INF]]


def dry_reference(
    ids: list[int], vocab: int, multiplier: float, base: float, allowed: int, breakers: set[int]
) -> list[float]:
    """text-generation-webui's DRY loop, one row at a time, written out plainly."""
    penalty = [0.0] * vocab
    last = ids[-1]
    if last in breakers:
        return penalty
    longest: dict[int, int] = {}
    for i in range(len(ids) - 1):
        if ids[i] != last or ids[i + 1] in breakers:
            continue
        length = 1
        while length < 50:
            j = i - length
            if j < 0 or ids[j] != ids[-(length + 1)] or ids[-(length + 1)] in breakers:
                break
            length += 1
        longest[ids[i + 1]] = max(length, longest.get(ids[i + 1], 0))
    for token, length in longest.items():
        if length >= allowed:
            penalty[token] = multiplier * base ** (length - allowed)
    return penalty


@pytest.mark.parametrize("allowed", [1, 2, 3])
def test_dry_matches_the_reference_loop(allowed: int) -> None:
    gen = torch.Generator().manual_seed(allowed)
    ids = torch.randint(0, 4, (6, 30), generator=gen)
    ids[0, -6:] = ids[0, :6]  # a long repeat
    dry = make(
        Dry,
        multiplier=0.8,
        base=1.75,
        allowed_length=allowed,
        sequence_breaker_ids=[3],
        sequence_breakers=[],
    )
    out = dry.apply(torch.zeros(6, 8), ctx(ids.tolist()))
    expected = torch.tensor(
        [dry_reference(row, 8, 0.8, 1.75, allowed, {3}) for row in ids.tolist()]
    )
    assert torch.allclose(-out, expected)
    assert bool((out < 0).any())


def test_dry_resolves_string_breakers_with_the_tokenizer() -> None:
    class Tok:
        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return [9, {"\n": 3}.get(text[-1], 5)]

    ids = [[1, 2, 3, 1, 2]]  # "1 2" repeats; its continuation 3 is a breaker, so no penalty
    dry = make(Dry, allowed_length=1, sequence_breakers=["\n"])
    context = ctx(ids)
    assert bool(
        (dry.apply(torch.zeros(1, 6), context) < 0).any()
    )  # no tokenizer: 3 is an ordinary token
    context.tokenizer = Tok()
    assert torch.equal(dry.apply(torch.zeros(1, 6), context), torch.zeros(1, 6))


def test_top_n_sigma_keeps_logits_within_n_std_of_the_max() -> None:
    scores = torch.tensor([[4.0, 3.0, 0.0, -1.0, -INF]])
    finite = scores[0, :4]
    cutoff = 4.0 - 1.0 * finite.std(unbiased=False)
    out = make(TopNSigma, top_n_sigma=1.0).apply(scores, ctx([[0]]))
    assert torch.equal(torch.isfinite(out[0]), scores[0] >= cutoff)


def test_top_a_threshold_is_a_times_pmax_squared() -> None:
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    out = make(TopA, top_a=0.5).apply(probs.log(), ctx([[0]]))  # cutoff 0.5 * 0.25 = 0.125
    assert torch.isfinite(out).tolist() == [[True, True, True, False]]


def test_tail_free_cuts_where_the_curvature_mass_passes_z() -> None:
    probs = torch.tensor([[0.4, 0.3, 0.2, 0.05, 0.03, 0.02]])
    # d2 = |[0.0, -0.05, 0.13, -0.01]| -> normalized [0, .263, .684, .053] -> cdf [0, .263, .947, 1]
    out = make(TailFree, tfs=0.5).apply(probs.log(), ctx([[0]]))
    assert torch.isfinite(out).tolist() == [[True, True, True, False, False, False]]


def test_xtc_removes_top_choices_but_the_least_likely() -> None:
    probs = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    out = make(Xtc, probability=1.0, threshold=0.15).apply(probs.log(), ctx([[0]], seeds=[1]))
    assert torch.isfinite(out).tolist() == [[False, False, True, True]]
    never = make(Xtc, probability=0.0, threshold=0.15).apply(probs.log(), ctx([[0]], seeds=[1]))
    assert torch.equal(never, probs.log())


def test_xtc_acts_with_the_configured_probability_and_per_row_seeds() -> None:
    probs = torch.tensor([[0.4, 0.3, 0.2, 0.1]]).log().expand(400, 4)
    out = make(Xtc, probability=0.3, threshold=0.15).apply(
        probs, ctx([[0]] * 400, seeds=list(range(400)))
    )
    acted = (~torch.isfinite(out[:, 0])).float().mean().item()
    assert 0.22 < acted < 0.38


def test_dynamic_temperature_maps_entropy_onto_the_range() -> None:
    flat = torch.zeros(1, 8)  # maximal entropy -> T = temperature + range
    out = make(DynamicTemperature, temperature=1.0, range=0.5).apply(flat + 3.0, ctx([[0]]))
    assert torch.allclose(out, (flat + 3.0) / 1.5)
    peaked = torch.tensor([[10.0, 0.0, 0.0, 0.0]])
    probs = peaked.softmax(-1)
    h = -(probs * probs.log()).sum() / math.log(4)
    t = 0.5 + 1.0 * h.item() ** 2.0
    out = make(DynamicTemperature, temperature=1.0, range=0.5, exponent=2.0).apply(
        peaked, ctx([[0]])
    )
    assert torch.allclose(out, peaked / t)
    plain = make(DynamicTemperature, temperature=0.7).apply(peaked, ctx([[0]]))
    assert torch.allclose(plain, peaked / 0.7)


def test_quadratic_smoothing_formula() -> None:
    scores = torch.tensor([[2.0, 1.0, -1.0, -INF]])
    f, c = 0.5, 2.0
    k, s = (3 - c) / 2, (c - 1) / 2
    d = scores[0, :3] - 2.0
    expected = -(k * f * d**2) + s * f * d**3 + 2.0
    out = make(QuadraticSmoothing, smoothing_factor=f, smoothing_curve=c).apply(scores, ctx([[0]]))
    assert torch.allclose(out[0, :3], expected) and out[0, 3] == -INF


def test_mirostat_v2_truncates_by_surprise_and_updates_mu() -> None:
    probs = torch.tensor([[0.5, 0.25, 0.125, 0.125]])
    sel = make(MirostatV2, tau=1.0, eta=0.5, seed=3)  # mu = 2 bits keeps p >= 0.25
    state = Pipeline([], sel).start(torch.tensor([[0]]))
    token = sel.select(probs.log(), state.context(torch.tensor([[0]])))
    assert int(token) in (0, 1)
    p = {0: 2 / 3, 1: 1 / 3}[int(token)]
    state.accept(token)
    mu = state.row_state(sel)["mu"]
    assert math.isclose(float(mu), 2.0 - 0.5 * (-math.log2(p) - 1.0), rel_tol=1e-5)
    # A new generation starts from mu = 2 * tau again.
    assert float(Pipeline([], sel).start(torch.tensor([[0]])).row_state(sel)["mu"]) == 2.0


def test_mirostat_v1_keeps_the_top_k_llama_cpp_computes() -> None:
    probs = torch.tensor([0.4, 0.2, 0.15, 0.1, 0.08, 0.04, 0.02, 0.01])
    sel = make(Mirostat, tau=2.0, eta=0.1, m=5)
    mu = torch.tensor([4.0])
    keep = sel.truncate(probs.log().unsqueeze(0), mu)
    num = sum(math.log((i + 2) / (i + 1)) * math.log(probs[i] / probs[i + 1]) for i in range(4))
    den = sum(math.log((i + 2) / (i + 1)) ** 2 for i in range(4))
    s_hat = num / den
    eps = s_hat - 1
    k = int(((eps * 2**4.0) / (1 - 8 ** (-eps))) ** (1 / s_hat))
    assert int(keep.sum()) == max(1, min(8, k))


def test_dynamic_temperature_saturates_instead_of_overflowing_fp16() -> None:
    # A confident row gets a temperature near 0: 7.7 / T would overflow float16.
    scores = torch.tensor([[7.7031, -1.4668]], dtype=torch.float16)
    out = make(DynamicTemperature, temperature=0.2, range=0.5, exponent=2.0).apply(scores, ctx([[0]]))
    assert torch.isfinite(out).all() and int(out.argmax()) == 0
