"""Mirostat v1 and v2: selectors that steer each row's surprise towards a target ``tau``.

Reference: llama.cpp ``llama_sampler_mirostat_apply`` and
``llama_sampler_mirostat_v2_apply`` (src/llama-sampling.cpp), after Basu et al.,
"Mirostat: a neural text decoding algorithm that directly controls perplexity" (2021).
Each row keeps its own ``mu`` (initially ``2 * tau``). After a token is chosen,
``mu -= eta * (surprise - tau)`` where surprise is ``-log2 p`` of the chosen token
under the truncated, renormalized distribution.

They are selectors, not processors, because they choose the token and learn from it.
"""

from __future__ import annotations

import math

import torch
from pydantic import Field

from logitkit import NewRows, ProcessorConfig, RowState, Selector, StepContext
from logitkit.sampling import race
from logitkit_builtins.engines.seeds import seed_state

NEG_INF = float("-inf")
#: The largest target surprise (bits) a config may ask for.
MAX_TAU = 1024.0


class MirostatConfig(ProcessorConfig):
    tau: float = Field(
        default=5.0,
        gt=0,
        # No token of a float64 distribution is more than ~1075 bits surprising, so a larger
        # target means nothing, and 2 * tau must fit mu's float32.
        le=MAX_TAU,
        description="Target surprise in bits (llama.cpp's --mirostat-ent).",
    )
    eta: float = Field(
        default=0.1, gt=0, le=1, description="Learning rate of mu (llama.cpp's --mirostat-lr)."
    )
    seed: int | None = Field(
        default=None, ge=0, description="Seed for rows without a context seed."
    )


class MirostatV1Config(MirostatConfig):
    m: int = Field(default=100, ge=2, description="Tokens used to estimate the Zipf exponent s.")


class _MirostatBase(Selector):
    """Per-row mu and seed in the row state; the mu update in ``accept``."""

    Config = MirostatConfig
    primary = "tau"

    def init_rows(self, rows: NewRows) -> RowState:
        state = seed_state(rows, self.config.seed)
        state["mu"] = torch.full(
            (rows.count,), 2 * self.config.tau, dtype=torch.float32, device=rows.device
        )
        return state

    def truncate(self, logp: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        """Which tokens stay candidates ([batch, vocab] bool); ``logp`` is log-softmax (float32 or float64)."""
        raise NotImplementedError

    def select(self, scores: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        state = ctx.row_state(self)
        if state is None:  # a call on its own: a fresh state for these rows
            state = self.init_rows(NewRows(ctx.input_ids, ctx.prompt_lengths, _no_seeds(ctx)))
        # float64 scores stay float64: .float() would turn values past float32's range into inf.
        work = torch.float64 if scores.dtype == torch.float64 else torch.float32
        logp = scores.to(work).log_softmax(dim=-1)
        keep = self.truncate(logp, state["mu"].to(device=scores.device, dtype=work))
        # Never empty: the top token always stays.
        keep = keep.scatter(-1, logp.argmax(dim=-1, keepdim=True), True)
        truncated = logp.masked_fill(~keep, NEG_INF).log_softmax(dim=-1)
        # Kept until accept: the surprise of whatever token the host settles on.
        state["truncated"] = truncated.float()
        return race(truncated, state["seeds"], ctx.steps).to(scores.device)

    def accept(self, state: RowState, tokens: torch.Tensor) -> None:
        truncated = state.pop("truncated", None)
        if truncated is None:
            return
        chosen = truncated.gather(-1, tokens.view(-1, 1).to(truncated.device)).squeeze(-1)
        # A token the selector did not offer (forced by the caller) counts as very surprising, not infinite.
        surprise = (-chosen / math.log(2)).clamp(max=64.0)
        state["mu"] = state["mu"] - self.config.eta * (surprise.to(state["mu"].device) - self.config.tau)


def _no_seeds(ctx: StepContext) -> torch.Tensor:
    if ctx.seeds is not None:
        return ctx.seeds
    return torch.full((ctx.batch_size,), -1, dtype=torch.int64, device=ctx.input_ids.device)


class MirostatV2(_MirostatBase):
    """Mirostat 2.0: keep tokens whose surprise is at most mu, sample, then update mu."""

    name = "mirostat_v2"

    def truncate(self, logp: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        return -logp / math.log(2) <= mu.unsqueeze(-1)


class Mirostat(_MirostatBase):
    """Mirostat 1.0: estimate the Zipf exponent from the top m tokens, keep the top k it implies."""

    name = "mirostat"
    Config = MirostatV1Config

    def truncate(self, logp: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
        vocab = logp.shape[-1]
        sorted_logp, order = logp.sort(dim=-1, descending=True)
        pairs = min(self.config.m - 1, vocab - 1)
        if pairs < 1:
            return torch.ones_like(logp, dtype=torch.bool)
        i = torch.arange(pairs, device=logp.device, dtype=logp.dtype)
        t = torch.log((i + 2) / (i + 1))
        b = sorted_logp[:, :pairs] - sorted_logp[:, 1 : pairs + 1]
        # Only pairs of real candidates count (llama.cpp's candidate list has no -inf tokens).
        valid = torch.isfinite(b)
        s_hat = torch.where(valid, t * b, 0.0).sum(-1) / torch.where(valid, t * t, 0.0).sum(-1)
        eps = s_hat - 1
        k = ((eps * torch.pow(2.0, mu)) / (1 - torch.pow(float(vocab), -eps))).pow(1 / s_hat)
        k = torch.nan_to_num(k, nan=1.0, posinf=float(vocab)).clamp(1, vocab).floor().long()
        ranks = torch.arange(vocab, device=logp.device).expand_as(logp)
        keep_sorted = ranks < k.unsqueeze(-1)
        return keep_sorted.scatter(-1, order, keep_sorted)
