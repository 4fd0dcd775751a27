"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD^2 with a polynomial kernel.

Unlike FID it has an unbiased estimator, so scores from different sample sizes compare,
and it reports a spread over random subsets.
"""

from __future__ import annotations

import torch

from ..errors import GenforgeError
from .base import TwoSetMetric


def polynomial_kernel(x: torch.Tensor, y: torch.Tensor, degree: int, gamma: float, coef: float) -> torch.Tensor:
    return (gamma * (x @ y.T) + coef) ** degree


def mmd2_unbiased(kxx: torch.Tensor, kyy: torch.Tensor, kxy: torch.Tensor) -> float:
    """MMD^2 U-statistic for m samples a side: the diagonals k(x_i, x_i) are left out."""
    m = len(kxx)
    within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(within - 2 * kxy.sum() / (m * m))


class KID(TwoSetMetric):
    """KID on features: `update(features, real=...)`, then `compute()` -> {"kid", "kid_std"}.

    Each of `subsets` estimates uses `subset_size` samples a side, drawn without
    replacement from a generator seeded with `seed` (so compute() is repeatable). With
    fewer samples than that on either side, every subset uses min(n_real, n_fake); the
    size actually used is in `subset_size_used` after compute(). kid_std is the standard
    deviation over subsets (ddof=0, as torchmetrics and torch-fidelity report it).
    """

    def __init__(self, subsets: int = 100, subset_size: int = 1000, degree: int = 3,
                 gamma: float | None = None, coef: float = 1.0, seed: int = 0):
        if subsets < 1 or subset_size < 2:
            raise GenforgeError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
        self.subsets, self.subset_size, self.seed = subsets, subset_size, seed
        self.degree, self.gamma, self.coef = degree, gamma, coef
        super().__init__()

    def reset(self) -> None:
        super().reset()
        self.subset_size_used: int | None = None

    def compute(self) -> dict[str, float]:
        real, fake = self._features.get(True).double(), self._features.get(False).double()
        m = min(self.subset_size, len(real), len(fake))
        if m < 2:
            raise GenforgeError(f"KID needs at least 2 samples a side, got {len(real)} real and {len(fake)} fake")
        gamma = 1.0 / real.shape[1] if self.gamma is None else self.gamma
        g = torch.Generator().manual_seed(self.seed)

        def k(a, b):
            return polynomial_kernel(a, b, self.degree, gamma, self.coef)

        scores = []
        for _ in range(self.subsets):
            x = real[torch.randperm(len(real), generator=g)[:m]]
            y = fake[torch.randperm(len(fake), generator=g)[:m]]
            scores.append(mmd2_unbiased(k(x, x), k(y, y), k(x, y)))
        self.subset_size_used = m
        scores = torch.tensor(scores, dtype=torch.float64)
        return {"kid": float(scores.mean()), "kid_std": float(scores.std(unbiased=False))}
