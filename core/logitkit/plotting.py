"""Pictures of next-token distributions, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from logitkit.inspection import StageView, probabilities, temperature_entropies

#: Figure size in inches and resolution: 1200 x 800 pixels.
FIGSIZE = (12.0, 8.0)
DPI = 100


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: works on servers and CI without a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)  # no bbox_inches="tight": the pixel size stays FIGSIZE * DPI
    _pyplot().close(fig)
    return path


def temperature_raw(
    logits: torch.Tensor,
    temperatures: Sequence[float],
    path: Path,
    title_suffix: str = "",
    shown: int | None = None,
) -> Path:
    """Probability of each token, by token index, at each temperature (T = 1 dashed for reference).

    With ``shown``, only the ``shown`` most likely tokens are drawn (still in
    token-id order, with probabilities over the whole vocabulary).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ids = torch.arange(len(logits))
    if shown is not None and shown < len(logits):
        ids = torch.sort(torch.topk(logits, shown).indices).values
    x = range(len(ids))
    ax.plot(x, probabilities(logits)[ids].numpy(), "k--", alpha=0.5, label="T=1.0 (unchanged)")
    top = int(torch.argmax(logits[ids]))
    for t in temperatures:
        probs = probabilities(logits / t)[ids].numpy()
        ax.plot(x, probs, "o-", markersize=3, alpha=0.7, label=f"T={t}")
        ax.scatter([top], [probs[top]], color="red", zorder=5)
    if len(ids) < len(logits):
        ax.set_xlabel(f"the {len(ids)} most likely tokens, in token-id order")
    else:
        ax.set_xlabel("token index")
    ax.set_title(f"Temperature reshapes the next-token distribution{title_suffix}")
    ax.set_ylabel("probability")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def temperature_sorted(
    logits: torch.Tensor, temperatures: Sequence[float], path: Path, title_suffix: str = ""
) -> Path:
    """Probabilities sorted from most to least likely, log scale: low T falls steeply, high T stays flat."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for t in temperatures:
        probs = torch.sort(probabilities(logits / t), descending=True).values
        ax.plot(probs.numpy(), "o-", markersize=3, alpha=0.7, label=f"T={t}")
    ax.set_yscale("log")
    ax.set_title(f"Sorted next-token probabilities at each temperature{title_suffix}")
    ax.set_xlabel("rank (0 = most likely)")
    ax.set_ylabel("probability (log scale)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def entropy_curve(
    logits: torch.Tensor, temperatures: Sequence[float], path: Path, title_suffix: str = ""
) -> Path:
    """Entropy of softmax(z / T) against T, with the uniform distribution's log(V) as the ceiling."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.plot(
        list(temperatures),
        temperature_entropies(logits, temperatures),
        "-",
        label="H(softmax(z / T))",
    )
    ceiling = float(torch.log(torch.tensor(float(len(logits)))))
    ax.axhline(ceiling, color="gray", linestyle=":", label=f"uniform: log V = {ceiling:.2f}")
    ax.set_title(f"Entropy rises with temperature{title_suffix}")
    ax.set_xlabel("temperature T")
    ax.set_ylabel("entropy (nats)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)


def pipeline_stages(
    views: Sequence[StageView], path: Path, title_suffix: str = "", ranks: int = 100
) -> Path:
    """The distribution after each stage, over the model's most likely tokens, in the model's rank order (log scale)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    order = torch.argsort(views[0].probs, descending=True)[: min(ranks, len(views[0].probs))]
    for i, view in enumerate(views):
        name = "model" if view.label == "model" else f"{i}. {view.label} ({view.survivors} left)"
        shown = view.probs[order].clone()
        shown[shown == 0] = float(
            "nan"
        )  # removed tokens: a line that stops, since log(0) has no place
        ax.plot(shown.numpy(), "o-", markersize=3, alpha=0.7, label=name)
    ax.set_yscale("log")
    ax.set_title(f"The next-token distribution after each stage{title_suffix}")
    ax.set_xlabel(
        f"rank under the model (0 = most likely; the first {len(order)} shown; a line ends where its stage removed tokens)"
    )
    ax.set_ylabel("probability (log scale)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return _save(fig, path)
