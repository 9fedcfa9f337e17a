"""The speculative acceptance rule: which drafted tokens the target keeps, and what it emits in their place.

Greedy: a draft is kept while it equals the target's own choice. Sampling
(Leviathan et al., Chen et al.): a draft ``x`` drawn from ``q`` is kept with
probability ``min(1, p(x) / q(x))``; the first rejected one is replaced by a
draw from ``norm(max(0, p - q))``, and a row whose drafts were all kept
draws one more token from ``p``. A draft proposed without a distribution
(prompt lookup) is kept when a draw from ``p`` equals it. Either way every
emitted token is distributed as the target's ``p``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from logitkit_builtins._drafters import Draft


@dataclass
class Verdict:
    """``tokens`` [rows, k + 1]: what each row emits at each position; ``accepted`` [rows]: drafts kept."""

    tokens: torch.Tensor
    accepted: torch.Tensor


def _kept_prefix(keep: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """How many leading drafts each row keeps: ``keep`` up to the first False, within ``lengths``."""
    k = keep.shape[1]
    proposed = torch.arange(k, device=keep.device)[None, :] < lengths[:, None]
    return torch.cumprod((keep & proposed).long(), dim=1).sum(dim=1)


def greedy(choices: torch.Tensor, draft: Draft) -> Verdict:
    """``choices`` [rows, k + 1]: the target pipeline's own token at each position."""
    k = draft.tokens.shape[1]
    accepted = _kept_prefix(draft.tokens == choices[:, :k], draft.lengths)
    return Verdict(choices, accepted)


def _draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).view(probs.shape[:-1])


def sampled(probs: torch.Tensor, draft: Draft, generator: torch.Generator | None) -> Verdict:
    """``probs`` [rows, k + 1, vocab]: the target's processed distribution at each position."""
    k = draft.tokens.shape[1]
    fresh = _draw(probs, generator)  # a draw from p at every position (the bonus token, or the match test)
    if k == 0:
        return Verdict(fresh, torch.zeros(probs.shape[0], dtype=torch.long, device=probs.device))
    tokens = fresh.clone()
    if draft.probs is None:
        accepted = _kept_prefix(fresh[:, :k] == draft.tokens, draft.lengths)
        return Verdict(tokens, accepted)
    p = probs[:, :k]
    q = draft.probs
    index = draft.tokens[..., None]
    p_x = p.gather(-1, index).squeeze(-1)
    q_x = q.gather(-1, index).squeeze(-1)
    u = torch.rand(p_x.shape, generator=generator, device=p_x.device)
    accepted = _kept_prefix(u * q_x < p_x, draft.lengths)
    residual = (p - q).clamp_min(0)
    mass = residual.sum(-1, keepdim=True)
    # p == q leaves no residual mass; a rejection is then impossible, but keep the draw well defined.
    residual = torch.where(mass > 0, residual / mass.clamp_min(1e-30), p)
    replaced = _draw(residual, generator)
    rejected = accepted < draft.lengths
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    at = accepted.clamp_max(k - 1)
    tokens[:, :k] = torch.where(
        torch.arange(k, device=tokens.device)[None, :] < accepted[:, None], draft.tokens, tokens[:, :k]
    )
    tokens[rows[rejected], at[rejected]] = replaced[rows[rejected], at[rejected]]
    return Verdict(tokens, accepted)
