"""Random cases for the token-level built-ins, shared by the parity and property tests.

Each case builder takes a seeded ``random.Random`` and the input shape and
returns logitkit's processor, the step context, and transformers' own
processor configured the same way (``None`` where transformers has no class).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import generation as hf

from logitkit import Processor, StepContext, TokenSettings
from logitkit.registry import build_registry

REGISTRY = build_registry(env={})

HFProcessor = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class Inputs:
    input_ids: torch.Tensor
    prompt_length: int
    vocab: int

    @property
    def length(self) -> int:
        return int(self.input_ids.shape[1])


@dataclass
class Case:
    ours: Processor
    ctx: StepContext
    theirs: HFProcessor | None


def build(name: str, fields: dict[str, Any], tokens: TokenSettings | None = None, **kwargs: Any) -> Processor:
    cls = REGISTRY.processors[name].cls
    processor: Processor = cls(cls.Config.model_validate(fields), tokens or TokenSettings(), **kwargs)
    return processor


def make_inputs(rng: random.Random, batch: int, vocab: int, length: int, alphabet: int = 6) -> Inputs:
    """A history drawn from a few ids, so repeats and n-gram matches are frequent."""
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    ids = torch.randint(0, min(alphabet, vocab), (batch, length), generator=gen)
    return Inputs(ids, prompt_length=rng.randint(1, length), vocab=vocab)


def ids_from(rng: random.Random, k: int, vocab: int, alphabet: int = 6) -> list[int]:
    return [rng.randrange(min(alphabet, vocab)) for _ in range(k)]


def ctx_of(inputs: Inputs, tokens: TokenSettings | None = None, **extra: Any) -> StepContext:
    return StepContext(
        input_ids=inputs.input_ids,
        prompt_lengths=inputs.prompt_length,
        steps=inputs.length - inputs.prompt_length,
        tokens=tokens or TokenSettings(),
        **extra,
    )


def eos_tokens(rng: random.Random, vocab: int) -> TokenSettings:
    return TokenSettings(eos=sorted(set(ids_from(rng, rng.randint(1, 2), vocab))))


# -- one builder per processor ------------------------------------------------------------


def repetition_penalty(rng: random.Random, x: Inputs) -> Case:
    penalty = rng.choice([0.5, 1.2, 2.0, 1.05])
    mode = rng.choice(["none", "int", "padding"])
    fields: dict[str, Any] = {"penalty": penalty}
    extra: dict[str, Any] = {}
    ignore: int | torch.Tensor | None = None
    if mode == "int":
        ignore = rng.randint(0, x.length)
        fields["prompt_ignore_length"] = ignore
    elif mode == "padding":
        pads = torch.tensor([rng.randint(0, x.prompt_length) for _ in range(x.input_ids.shape[0])])
        mask = (torch.arange(x.prompt_length)[None, :] >= pads[:, None]).long()
        extra["attention_mask"] = mask
        ignore = (mask != 0).int().argmax(dim=1)  # what generate() derives from the attention mask
    theirs = hf.RepetitionPenaltyLogitsProcessor(penalty, prompt_ignore_length=ignore)
    return Case(build("repetition_penalty", fields), ctx_of(x, **extra), theirs)


def encoder_repetition_penalty(rng: random.Random, x: Inputs) -> Case:
    penalty = rng.choice([0.5, 1.3, 3.0])
    encoder = make_encoder(rng, x)
    theirs = hf.EncoderRepetitionPenaltyLogitsProcessor(penalty, encoder)
    return Case(build("encoder_repetition_penalty", {"penalty": penalty}), ctx_of(x, encoder_input_ids=encoder), theirs)


def make_encoder(rng: random.Random, x: Inputs) -> torch.Tensor:
    """Encoder ids for one or several rows per prompt (beam-style expansion)."""
    batch = x.input_ids.shape[0]
    divisors = [d for d in range(1, batch + 1) if batch % d == 0]
    prompts = rng.choice(divisors)
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    return torch.randint(0, min(6, x.vocab), (prompts, rng.randint(1, 12)), generator=gen)


def no_repeat_ngram_size(rng: random.Random, x: Inputs) -> Case:
    n = rng.randint(1, 4)
    return Case(build("no_repeat_ngram_size", {"ngram_size": n}), ctx_of(x), hf.NoRepeatNGramLogitsProcessor(n))


def encoder_no_repeat_ngram_size(rng: random.Random, x: Inputs) -> Case:
    n = rng.randint(1, 4)
    encoder = make_encoder(rng, x)
    theirs = hf.EncoderNoRepeatNGramLogitsProcessor(n, encoder)
    return Case(build("encoder_no_repeat_ngram_size", {"ngram_size": n}), ctx_of(x, encoder_input_ids=encoder), theirs)


def bad_words_ids(rng: random.Random, x: Inputs) -> Case:
    tokens = eos_tokens(rng, x.vocab)
    words = [ids_from(rng, rng.randint(1, 4), x.vocab) for _ in range(rng.randint(1, 6))]
    words = [list(w) for w in dict.fromkeys(tuple(w) for w in words)]
    if rng.random() < 0.5:
        words.append([tokens.eos[0]])  # a lone eos is dropped, as in transformers
    theirs = hf.NoBadWordsLogitsProcessor(words, tokens.eos)
    return Case(build("bad_words_ids", {"bad_words_ids": words}, tokens), ctx_of(x, tokens), theirs)


def sequence_bias(rng: random.Random, x: Inputs) -> Case:
    seqs = {tuple(ids_from(rng, rng.randint(1, 4), x.vocab)) for _ in range(rng.randint(1, 6))}
    pairs = [[list(s), round(rng.uniform(-5, 5), 3)] for s in sorted(seqs)]
    theirs = hf.SequenceBiasLogitsProcessor([[list(s), float(b)] for s, b in pairs])
    return Case(build("sequence_bias", {"sequence_bias": pairs}), ctx_of(x), theirs)


def suppress_tokens(rng: random.Random, x: Inputs) -> Case:
    ids = sorted(set(ids_from(rng, rng.randint(1, 5), x.vocab, alphabet=x.vocab)))
    return Case(build("suppress_tokens", {"suppress_tokens": ids}), ctx_of(x), hf.SuppressTokensLogitsProcessor(ids))


def begin_suppress_tokens(rng: random.Random, x: Inputs) -> Case:
    ids = sorted(set(ids_from(rng, rng.randint(1, 5), x.vocab, alphabet=x.vocab)))
    step = rng.choice([0, 0, 1, x.length - x.prompt_length])
    theirs = hf.SuppressTokensAtBeginLogitsProcessor(ids, x.prompt_length + step)
    fields = {"begin_suppress_tokens": ids, "begin_step": step}
    return Case(build("begin_suppress_tokens", fields), ctx_of(x), theirs)


def forced_bos_token_id(rng: random.Random, x: Inputs) -> Case:
    token = rng.randrange(x.vocab)
    if rng.random() < 0.5:
        x = Inputs(x.input_ids[:, :1], prompt_length=1, vocab=x.vocab)  # the step where it fires
    theirs = hf.ForcedBOSTokenLogitsProcessor(token)
    return Case(build("forced_bos_token_id", {"forced_bos_token_id": token}), ctx_of(x), theirs)


def forced_eos_token_id(rng: random.Random, x: Inputs) -> Case:
    ids = sorted(set(ids_from(rng, rng.randint(1, 2), x.vocab, alphabet=x.vocab)))
    max_length = x.length + rng.choice([1, 1, 2, 5])
    theirs = hf.ForcedEOSTokenLogitsProcessor(max_length, ids)
    fields = {"forced_eos_token_id": ids, "max_length": max_length}
    return Case(build("forced_eos_token_id", fields), ctx_of(x), theirs)


def forced_decoder_ids(rng: random.Random, x: Inputs) -> Case:
    # transformers 5 removed ForceTokensLogitsProcessor; this is its rule (position = current length).
    pairs = {rng.choice([x.length, x.length + 1, 1]): rng.randrange(x.vocab) for _ in range(2)}

    def reference(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        token = pairs.get(input_ids.shape[-1])
        if token is None:
            return scores
        out = torch.full_like(scores, float("-inf"))
        out[:, token] = 0
        return out

    fields = {"forced_decoder_ids": [[p, t] for p, t in pairs.items()]}
    return Case(build("forced_decoder_ids", fields), ctx_of(x), reference)


def min_length(rng: random.Random, x: Inputs) -> Case:
    tokens = eos_tokens(rng, x.vocab)
    n = rng.randint(0, x.length + 3)
    theirs = hf.MinLengthLogitsProcessor(n, tokens.eos)
    return Case(build("min_length", {"min_length": n}, tokens), ctx_of(x, tokens), theirs)


def min_new_tokens(rng: random.Random, x: Inputs) -> Case:
    tokens = eos_tokens(rng, x.vocab)
    n = rng.randint(0, x.length - x.prompt_length + 3)
    theirs = hf.MinNewTokensLengthLogitsProcessor(x.prompt_length, n, tokens.eos)
    return Case(build("min_new_tokens", {"min_new_tokens": n}, tokens), ctx_of(x, tokens), theirs)


def exponential_decay_length_penalty(rng: random.Random, x: Inputs) -> Case:
    tokens = eos_tokens(rng, x.vocab)
    start = rng.randint(0, x.length - x.prompt_length + 1)
    factor = rng.choice([0.9, 1.05, 1.5])
    theirs = hf.ExponentialDecayLengthPenalty((start, factor), tokens.eos, x.prompt_length)
    fields = {"start_index": start, "decay_factor": factor}
    return Case(build("exponential_decay_length_penalty", fields, tokens), ctx_of(x, tokens), theirs)


def remove_invalid_values(rng: random.Random, x: Inputs) -> Case:
    return Case(build("remove_invalid_values", {}), ctx_of(x), hf.InfNanRemoveLogitsProcessor())


def renormalize_logits(rng: random.Random, x: Inputs) -> Case:
    return Case(build("renormalize_logits", {}), ctx_of(x), hf.LogitNormalization())


def prefix_allowed_tokens(rng: random.Random, x: Inputs) -> Case:
    batch = x.input_ids.shape[0]
    beams = rng.choice([d for d in range(1, batch + 1) if batch % d == 0])
    salt = rng.randrange(1000)

    def allowed(batch_id: int, ids: torch.Tensor) -> list[int]:
        # Depends on the row's last token and its batch id; an empty answer is never returned.
        last = int(ids[-1])
        return sorted({(last * 7 + batch_id + salt) % x.vocab, (last + 3 * batch_id) % x.vocab})

    ours = build("prefix_allowed_tokens", {"num_beams": beams}, per_row_fn=allowed)
    return Case(ours, ctx_of(x), hf.PrefixConstrainedLogitsProcessor(allowed, beams))


BUILDERS: dict[str, Callable[[random.Random, Inputs], Case]] = {
    f.__name__: f
    for f in (
        repetition_penalty, encoder_repetition_penalty, no_repeat_ngram_size, encoder_no_repeat_ngram_size,
        bad_words_ids, sequence_bias, suppress_tokens, begin_suppress_tokens, forced_bos_token_id,
        forced_eos_token_id, forced_decoder_ids, min_length, min_new_tokens, exponential_decay_length_penalty,
        remove_invalid_values, renormalize_logits, prefix_allowed_tokens,
    )
}  # fmt: skip


def random_scores(rng: random.Random, batch: int, vocab: int, dtype: torch.dtype, invalid: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(rng.randrange(2**31))
    scores = (torch.randn(batch, vocab, generator=gen) * 4).to(dtype)
    if invalid:
        spots = torch.rand(batch, vocab, generator=gen)
        scores = scores.masked_fill(spots < 0.05, float("nan")).masked_fill(spots > 0.97, float("inf"))
        scores = scores.masked_fill((spots > 0.05) & (spots < 0.08), float("-inf"))
    return scores
