"""One picture of a whole judgement: every image with its edit map, the most suspect first.

Judging a folder prints a list of probabilities; a reader looking for what was edited would
rather see the images, their edited regions in red, sorted so the suspects come first.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from .heatmap import overlay  # noqa: E402

MAX_TILES = 64
COLUMNS = 8


def contact_sheet(originals: list[np.ndarray], probs: torch.Tensor, maps: torch.Tensor, threshold: float,
                  path: str | Path, soft: list[bool | None] | None = None, names: list[str] | None = None) -> int:
    """Writes a PNG grid of the MAX_TILES most suspect images (highest probability first), each
    tinted red where its edit map is high and titled with its probability, red when the verdict
    is generated/edited and marked "soft" when it looks blurred or resized. Returns the number
    of images shown."""
    order = torch.argsort(probs, descending=True)[:MAX_TILES].tolist()
    rows, cols = math.ceil(len(order) / COLUMNS), min(COLUMNS, len(order))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 2.0 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, order):
        p = float(probs[i])
        ax.imshow(overlay(originals[i], maps[i]), interpolation="nearest")
        title = f"{p:.3f}" + (" soft" if soft and soft[i] else "")
        if names:
            name = Path(names[i]).name
            title += "\n" + (name if len(name) <= 18 else f"{name[:8]}...{name[-7:]}")  # file and index
        ax.set_title(title, fontsize=7, color="tab:red" if p >= threshold else "black")
    fig.suptitle(f"P(generated or edited), red at or above {threshold:g}; red pixels: the edit map", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return len(order)
