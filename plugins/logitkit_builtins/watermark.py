"""Watermarking: the green-list scheme (Kirchenbauer et al.) and SynthID-Text, with their detectors.

One processor, ``watermarking``, with ``scheme: greenlist`` (default) or
``scheme: synthid``. Both reproduce transformers' processors; both detect:
``detect_greenlist``, ``detect_synthid`` and ``detect`` here, and
``Watermarking.detect`` for ``logitkit detect``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, Field, model_validator

from logitkit import CheckContext, Processor, ProcessorConfig, Stage, StepContext, TokenSettings
from logitkit.detection import DEFAULT_Z_THRESHOLD, Detection, p_value
from logitkit_builtins import _greenlist, _synthid

log = logging.getLogger("logitkit_builtins.watermark")

GREENLIST_FIELDS = frozenset(
    {"greenlist_ratio", "bias", "hashing_key", "seeding_scheme", "context_width"}
)
SYNTHID_FIELDS = frozenset(
    {
        "keys",
        "ngram_len",
        "sampling_table_size",
        "sampling_table_seed",
        "context_history_size",
        "skip_first_ngram_calls",
    }
)
MAX_TABLE_SIZE = 2**24  # transformers' SynthIDTextWatermarkingConfig limit


class WatermarkingConfig(ProcessorConfig):
    scheme: Literal["greenlist", "synthid"] = Field(
        default="greenlist",
        description="Which watermark to embed; 'synthid' when unset and keys are given.",
    )
    # green list
    greenlist_ratio: float = Field(
        default=0.25, gt=0, lt=1, description="Share of the vocabulary that is green."
    )
    bias: float = Field(default=2.0, ge=0, description="Added to the logits of green tokens.")
    hashing_key: int = Field(
        default=15485863,
        ge=0,
        le=2**32 - 1,
        description="Secret key seeding the green lists (32 bits).",
    )
    seeding_scheme: Literal["lefthash", "selfhash"] = Field(
        default="lefthash",
        description="lefthash: seed from the previous token; selfhash: from the window ending at the candidate.",
    )
    context_width: int = Field(default=1, ge=1, description="Tokens in the seeding window.")
    # SynthID
    keys: list[Annotated[int, Field(ge=0, lt=2**63)]] | None = Field(
        default=None, min_length=1, description="SynthID: one secret key per tournament layer."
    )
    ngram_len: int = Field(
        default=5, ge=2, description="SynthID: n-gram length (context is ngram_len - 1 tokens)."
    )
    sampling_table_size: int = Field(
        default=2**16, ge=2, le=MAX_TABLE_SIZE, description="SynthID: size of the g-value table."
    )
    sampling_table_seed: int = Field(
        default=0, ge=0, description="SynthID: seed of the g-value table."
    )
    context_history_size: int = Field(
        default=1024, ge=1, description="SynthID: contexts remembered to skip repeats."
    )
    skip_first_ngram_calls: bool = Field(
        default=False, description="SynthID: leave the first ngram_len - 1 steps alone."
    )

    @model_validator(mode="before")
    @classmethod
    def _scheme_from_keys(cls, data: Any) -> Any:
        # transformers' SynthIDTextWatermarkingConfig has keys and no scheme field; its dict reads as synthid.
        if isinstance(data, dict) and "scheme" not in data and data.get("keys") is not None:
            return {**data, "scheme": "synthid"}
        return data


def scheme_problems(config: WatermarkingConfig) -> list[str]:
    """Fields that belong to the other scheme, and what SynthID cannot do without."""
    other = GREENLIST_FIELDS if config.scheme == "synthid" else SYNTHID_FIELDS
    problems = [
        f"{name!r} is a {'synthid' if name in SYNTHID_FIELDS else 'greenlist'} setting; this entry has scheme {config.scheme!r}"
        for name in sorted(config.model_fields_set & other)
    ]
    if config.scheme == "synthid" and not config.keys:
        problems.append(
            "scheme 'synthid' needs 'keys': a list of secret integers, one per tournament layer"
        )
    return problems


class Watermarking(Processor):
    """Embed a detectable watermark: green-list bias (Kirchenbauer et al.) or SynthID-Text tournament."""

    name = "watermarking"
    stage = Stage.WATERMARK
    Config = WatermarkingConfig
    primary = "scheme"
    needs = frozenset({"input_ids"})

    def __init__(
        self, config: BaseModel | None = None, tokens: TokenSettings | None = None
    ) -> None:
        super().__init__(config, tokens)
        problems = scheme_problems(self.config)  # type: ignore[arg-type]
        if problems:
            raise ValueError("watermarking: " + "; ".join(problems))
        # Green lists repeat with their seeds; reusing them changes nothing but the time taken.
        self._green_lists = _greenlist.GreenListCache()

    @classmethod
    def check(cls, config: BaseModel, context: CheckContext) -> Iterable[str]:
        return scheme_problems(config)  # type: ignore[arg-type]

    def apply(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        config: WatermarkingConfig = self.config  # type: ignore[assignment]
        if config.scheme == "synthid":
            return _apply_synthid(config, scores, ctx)
        return _apply_greenlist(config, self._vocab_size(scores), scores, ctx, self._green_lists)

    def _vocab_size(self, scores: torch.Tensor) -> int:
        # The detector must use the same vocabulary size; tokens.vocab_size pins it when the logits are padded.
        declared = self.tokens.vocab_size
        if declared is not None and declared > scores.shape[-1]:
            raise ValueError(
                f"watermarking: tokens.vocab_size is {declared} but the scores have {scores.shape[-1]} columns"
            )
        return declared or int(scores.shape[-1])

    @classmethod
    def detect(
        cls,
        config: BaseModel,
        tokens: TokenSettings,
        ids: torch.Tensor | Sequence[int],
        *,
        z_threshold: float = DEFAULT_Z_THRESHOLD,
    ) -> list[Detection]:
        """The detector ``logitkit detect`` calls: score ``ids`` for this entry's watermark.

        The green-list scheme reads the vocabulary size from ``tokens.vocab_size``.
        """
        return detect(config, ids, tokens=tokens, z_threshold=z_threshold)  # type: ignore[arg-type]


# -- applying ----------------------------------------------------------------------------------


def _apply_greenlist(
    config: WatermarkingConfig,
    vocab_size: int,
    scores: torch.Tensor,
    ctx: StepContext,
    cache: _greenlist.GreenListCache | None = None,
) -> torch.Tensor:
    input_ids = ctx.input_ids
    if input_ids.shape[-1] < config.context_width:
        log.warning("watermarking: %d tokens is fewer than context_width=%d; this step is not watermarked",
                    input_ids.shape[-1], config.context_width)  # fmt: skip
        return scores
    if config.seeding_scheme == "selfhash":
        green = _greenlist.selfhash_mask(
            input_ids,
            scores,
            vocab_size,
            config.greenlist_ratio,
            config.hashing_key,
            config.context_width,
            cache,
        )
    else:
        green = _greenlist.lefthash_mask(
            input_ids, vocab_size, config.greenlist_ratio, config.hashing_key, cache
        )
        green = torch.nn.functional.pad(green, (0, scores.shape[-1] - vocab_size))
    # A removed token stays removed: -inf + bias is NaN when the bias overflows the dtype (1e5 in fp16).
    green = green.to(scores.device) & (scores > float("-inf"))
    return torch.where(green, scores + config.bias, scores)


def _apply_synthid(
    config: WatermarkingConfig, scores: torch.Tensor, ctx: StepContext
) -> torch.Tensor:
    n = config.ngram_len
    generated = ctx.input_ids[:, ctx.prompt_length :]
    contexts = _synthid.generation_contexts(generated, n)
    if config.skip_first_ngram_calls and contexts.shape[1] < n:
        return scores
    hashes = _synthid.context_hashes(contexts)
    repeated = _synthid.last_repeated(
        hashes,
        config.context_history_size,
        first_tracked=n - 1 if config.skip_first_ngram_calls else 0,
    )
    keys = torch.tensor(config.keys, dtype=torch.int64, device=scores.device)
    table = _synthid.sampling_table(config.sampling_table_size, config.sampling_table_seed).to(
        scores.device
    )
    g_values = _synthid.candidate_g_values(
        hashes[:, -1].to(scores.device), scores.shape[-1], keys, table
    )
    # The tournament writes the dtype's lowest value where a probability is 0; a token that was
    # removed (-inf) before must stay removed, or an emptied row looks alive and yields token 0.
    updated = _synthid.tournament(scores, g_values).masked_fill(torch.isneginf(scores), float("-inf"))
    return torch.where(repeated.to(scores.device).unsqueeze(-1), scores, updated)


# -- detecting ---------------------------------------------------------------------------------


def _as_batch(ids: torch.Tensor | Sequence[int] | Sequence[Sequence[int]]) -> torch.Tensor:
    tensor = ids if isinstance(ids, torch.Tensor) else torch.tensor(ids, dtype=torch.int64)
    tensor = tensor.to(torch.int64)
    if tensor.dim() == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 2:
        raise ValueError(
            f"token ids must be one sequence or [batch, length], got shape {tuple(tensor.shape)}"
        )
    return tensor


def _verdicts(
    scheme: str,
    scored: torch.Tensor,
    score: torch.Tensor,
    expected: float,
    z: torch.Tensor,
    z_threshold: float,
) -> list[Detection]:
    results = []
    for n, s, zs in zip(scored.tolist(), score.tolist(), z.tolist(), strict=True):
        results.append(
            Detection(
                scheme, int(n), float(s), expected, float(zs), p_value(zs), bool(zs > z_threshold)
            )
        )
    return results


def detect_greenlist(
    ids: torch.Tensor | Sequence[int] | Sequence[Sequence[int]],
    *,
    vocab_size: int,
    greenlist_ratio: float = 0.25,
    hashing_key: int = 15485863,
    seeding_scheme: str = "lefthash",
    context_width: int = 1,
    bos_token_id: int | None = None,
    ignore_repeated_ngrams: bool = False,
    z_threshold: float = DEFAULT_Z_THRESHOLD,
) -> list[Detection]:
    """Count green tokens as transformers' ``WatermarkDetector`` does; z = (green - γT) / sqrt(Tγ(1-γ)).

    A leading ``bos_token_id`` is dropped (transformers does the same). Raises
    ``ValueError`` when nothing is left to score.
    """
    batch = _as_batch(ids)
    if bos_token_id is not None and batch.shape[-1] > 0:
        has_bos = batch[:, 0] == bos_token_id
        if bool(has_bos.any()) != bool(has_bos.all()):
            raise ValueError(
                "some sequences start with the bos token and some do not; tokenize them alike"
            )
        if bool(has_bos.all()):
            batch = batch[:, 1:]
    if batch.shape[-1] - context_width < 1:
        raise ValueError(
            f"need more than context_width={context_width} tokens to score, got {batch.shape[-1]}"
        )
    scored, green = _greenlist.detection_counts(
        batch,
        vocab_size=vocab_size,
        ratio=greenlist_ratio,
        hashing_key=hashing_key,
        seeding_scheme=seeding_scheme,
        context_width=context_width,
        ignore_repeated_ngrams=ignore_repeated_ngrams,
    )
    total = scored.to(torch.float64)
    z = (green - greenlist_ratio * total) / torch.sqrt(
        total * greenlist_ratio * (1 - greenlist_ratio)
    )
    return _verdicts("greenlist", scored, green / total, greenlist_ratio, z, z_threshold)


def synthid_g_values(
    ids: torch.Tensor,
    *,
    keys: Sequence[int],
    ngram_len: int = 5,
    sampling_table_size: int = 2**16,
    sampling_table_seed: int = 0,
    context_history_size: int = 1024,
    eos_token_ids: Sequence[int] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(g_values [B, P, depth], mask [B, P])`` for every full n-gram of ``ids``.

    Same values and masks as transformers' ``compute_g_values``,
    ``compute_context_repetition_mask`` and ``compute_eos_token_mask``: the
    mask drops n-grams whose context was seen in the last
    ``context_history_size`` contexts, and everything from the first eos on.
    """
    table = _synthid.sampling_table(sampling_table_size, sampling_table_seed).to(ids.device)
    key_tensor = torch.tensor(list(keys), dtype=torch.int64, device=ids.device)
    ngrams = ids.unfold(dimension=1, size=ngram_len, step=1)
    hashes = _synthid.accumulate_hash(
        torch.ones(ngrams.shape[:-1], dtype=torch.int64, device=ids.device), ngrams
    )
    g_values = _synthid.g_values_from_hashes(_synthid.with_keys(hashes, key_tensor), table)
    contexts = ids[:, :-1].unfold(dimension=1, size=ngram_len - 1, step=1)
    fresh = ~_synthid.repeated_in_history(_synthid.context_hashes(contexts), context_history_size)
    if eos_token_ids:
        is_eos = torch.isin(ids, torch.tensor(list(eos_token_ids), device=ids.device))
        before_eos = torch.cumsum(is_eos.long(), dim=-1) == 0
        fresh &= before_eos[:, ngram_len - 1 :]
    return g_values, fresh


def detect_synthid(
    ids: torch.Tensor | Sequence[int] | Sequence[Sequence[int]],
    *,
    keys: Sequence[int],
    ngram_len: int = 5,
    sampling_table_size: int = 2**16,
    sampling_table_seed: int = 0,
    context_history_size: int = 1024,
    eos_token_ids: Sequence[int] = (),
    z_threshold: float = DEFAULT_Z_THRESHOLD,
) -> list[Detection]:
    """Mean g-value test: z = (ḡ - p) / sqrt(p(1 - p) / (N·depth)), with p the table's share of ones.

    Without the watermark each g-value is a fair-ish coin (a table entry at a
    pseudo-random index), so ḡ over N scored n-grams and ``depth`` keys has
    mean p; the tournament pushes ḡ above p. No trained detector is needed.
    """
    batch = _as_batch(ids)
    if batch.shape[-1] < ngram_len:
        raise ValueError(
            f"need at least ngram_len={ngram_len} tokens to score, got {batch.shape[-1]}"
        )
    g_values, fresh = synthid_g_values(
        batch,
        keys=keys,
        ngram_len=ngram_len,
        sampling_table_size=sampling_table_size,
        sampling_table_seed=sampling_table_seed,
        context_history_size=context_history_size,
        eos_token_ids=eos_token_ids,
    )
    depth = g_values.shape[-1]
    counted = fresh.sum(dim=-1)
    ones = (g_values * fresh.unsqueeze(-1)).sum(dim=(1, 2)).to(torch.float64)
    draws = (counted * depth).to(torch.float64)
    mean = ones / draws
    p = float(_synthid.sampling_table(sampling_table_size, sampling_table_seed).double().mean())
    z = (mean - p) / torch.sqrt(p * (1 - p) / draws)
    return _verdicts("synthid", counted, mean, p, z, z_threshold)


def detect(
    config: WatermarkingConfig | dict[str, Any],
    ids: torch.Tensor | Sequence[int] | Sequence[Sequence[int]],
    *,
    tokens: TokenSettings | None = None,
    vocab_size: int | None = None,
    z_threshold: float = DEFAULT_Z_THRESHOLD,
) -> list[Detection]:
    """Detect the watermark a ``watermarking`` config embeds; one ``Detection`` per sequence.

    The green-list scheme needs the vocabulary size used at generation:
    ``vocab_size`` here, else ``tokens.vocab_size``.
    """
    cfg = (
        config
        if isinstance(config, WatermarkingConfig)
        else WatermarkingConfig.model_validate(config)
    )
    problems = scheme_problems(cfg)
    if problems:
        raise ValueError("watermarking: " + "; ".join(problems))
    tokens = tokens or TokenSettings()
    if cfg.scheme == "synthid":
        assert cfg.keys is not None  # scheme_problems guarantees it
        return detect_synthid(
            ids,
            keys=cfg.keys,
            ngram_len=cfg.ngram_len,
            sampling_table_size=cfg.sampling_table_size,
            sampling_table_seed=cfg.sampling_table_seed,
            context_history_size=cfg.context_history_size,
            eos_token_ids=tokens.eos or (),
            z_threshold=z_threshold,
        )
    size = vocab_size or tokens.vocab_size
    if size is None:
        raise ValueError(
            "green-list detection needs the vocabulary size: set tokens.vocab_size or pass vocab_size"
        )
    return detect_greenlist(
        ids,
        vocab_size=size,
        greenlist_ratio=cfg.greenlist_ratio,
        hashing_key=cfg.hashing_key,
        seeding_scheme=cfg.seeding_scheme,
        context_width=cfg.context_width,
        bos_token_id=tokens.bos,
        z_threshold=z_threshold,
    )


def register_processors(register: Callable[..., None]) -> None:
    register(Watermarking)
