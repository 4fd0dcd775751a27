"""Moving codes from one class's region of latent space to another's, keeping each code's place
within its class: the optimal-transport (Monge) map between two Gaussians fitted to the classes'
codes.

For Gaussians N(m_s, S) and N(m_t, T) the map that moves mass least in squared distance is
linear, z -> m_t + A (z - m_s) with A = S^-1/2 (S^1/2 T S^1/2)^1/2 S^-1/2 (Knott & Smith
1984). A code one standard deviation along the source class's widest spread lands one
standard deviation along the matching spread of the target class. Adding the difference of
the means alone (the attribute vector) keeps the source class's spread, which lands codes in
corners where the decoder has never seen the target class.

The covariances are shrunk toward a multiple of the identity by Ledoit & Wolf's rule
(scikit-learn), because a class holds a few hundred codes against thousands of covariance
entries in a 64- or 128-dim code.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from sklearn.covariance import LedoitWolf

from ..errors import GenforgeError


@dataclass
class ClassGaussians:
    means: torch.Tensor  # (K, D)
    covariances: torch.Tensor  # (K, D, D), float64
    _maps: dict = field(default_factory=dict, repr=False)

    @classmethod
    def fit(cls, codes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> "ClassGaussians":
        """A Gaussian per class fitted to codes (N, D) with class labels (N,)."""
        counts = torch.bincount(labels, minlength=num_classes)
        if (counts < 2).any():
            few = (counts < 2).nonzero().flatten().tolist()
            raise GenforgeError(f"too few labelled codes of class(es) {few} to fit their spread (2 or more each)")
        means, covariances = [], []
        for c in range(num_classes):
            z = codes[labels == c].double()
            means.append(z.mean(0))
            covariances.append(torch.from_numpy(LedoitWolf().fit(z.numpy()).covariance_))
        return cls(torch.stack(means), torch.stack(covariances))

    def map(self, source: int, target: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(A, b) of the transport map z -> z @ A.T + b from class `source` to class `target`."""
        if (source, target) not in self._maps:
            s_half = _sqrtm(self.covariances[source])
            s_inv_half = torch.linalg.inv(s_half)
            a = s_inv_half @ _sqrtm(s_half @ self.covariances[target] @ s_half) @ s_inv_half
            self._maps[source, target] = a, self.means[target] - self.means[source] @ a.T
        return self._maps[source, target]

    def transport(self, z: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Codes z (N, D) of classes `source` (N,) moved to classes `target` (N,)."""
        out = torch.empty_like(z)
        pairs = torch.stack([source, target], 1)
        for s, t in pairs.unique(dim=0).tolist():
            rows = (pairs[:, 0] == s) & (pairs[:, 1] == t)
            a, b = self.map(s, t)
            out[rows] = (z[rows].double() @ a.T + b).to(z.dtype)
        return out


def _sqrtm(m: torch.Tensor) -> torch.Tensor:
    """The square root of a symmetric positive semi-definite matrix, by its eigenvectors."""
    values, vectors = torch.linalg.eigh(m)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T
