"""Density and coverage (Naeem et al. 2020): precision and recall that outliers sway less.

Both use only the real set's k-NN balls. Density counts how many real balls hold each
fake sample, divided by k (about 1 when the two distributions match; it can exceed 1);
coverage is the fraction of real balls holding at least one fake sample. Distances in
float32 (see _knn).
"""

from __future__ import annotations

from ..errors import GenforgeError
from ._knn import balls_containing, knn_radii, nearest_distance
from .base import TwoSetMetric


class DensityCoverage(TwoSetMetric):
    """`update(features, real=...)`, then `compute()` -> {"density", "coverage"}."""

    def __init__(self, k: int = 5):
        self.k = k
        super().__init__()

    def compute(self) -> dict[str, float]:
        real, fake = self._features.get(True), self._features.get(False)
        if len(real) <= self.k or len(fake) == 0:
            raise GenforgeError(f"density/coverage with k={self.k} need more than {self.k} real samples "
                                f"and some fake ones, got {len(real)} real and {len(fake)} fake")
        centre = real.mean(0)
        real, fake = real - centre, fake - centre
        radii = knn_radii(real, self.k)
        density = balls_containing(fake, real, radii).double().sum() / (self.k * len(fake))
        coverage = (nearest_distance(real, fake) <= radii).double().mean()
        return {"density": float(density), "coverage": float(coverage)}
