"""Improved precision and recall (Kynkäänniemi et al. 2019).

Each set's manifold is estimated as the union of k-NN balls around its samples.
Precision is the fraction of fake samples inside the real manifold (fidelity); recall is
the fraction of real samples inside the fake manifold (diversity). Distances in float32
(see _knn).
"""

from __future__ import annotations

from ..errors import GenforgeError
from ._knn import balls_containing, knn_radii
from .base import TwoSetMetric


class PrecisionRecall(TwoSetMetric):
    """`update(features, real=...)`, then `compute()` -> {"precision", "recall"}."""

    def __init__(self, k: int = 3):
        self.k = k
        super().__init__()

    def compute(self) -> dict[str, float]:
        real, fake = self._features.get(True), self._features.get(False)
        if len(real) <= self.k or len(fake) <= self.k:
            raise GenforgeError(f"precision/recall with k={self.k} need more than {self.k} samples a side, "
                                f"got {len(real)} real and {len(fake)} fake")
        centre = real.mean(0)
        real, fake = real - centre, fake - centre
        precision = (balls_containing(fake, real, knn_radii(real, self.k)) > 0).double().mean()
        recall = (balls_containing(real, fake, knn_radii(fake, self.k)) > 0).double().mean()
        return {"precision": float(precision), "recall": float(recall)}
