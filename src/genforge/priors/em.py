"""Expectation-maximisation for a Gaussian mixture, batched over components in torch.

Written here rather than calling scikit-learn's `GaussianMixture` for its speed: that loops over
the components in Python, one small matrix product each, and fitted 120 full-covariance
components to the 60,000 32-dim codes of an MNIST VAE in about 230 s on 2 cores, longer than a
quick training itself (BENCHMARKS.md, mixture-fit block). Here each EM step is two large matrix
products over all components at once, on the products of each code's coordinates (x_i x_j,
i <= j): the M-step's second moments are the responsibilities times those, the E-step's
Mahalanobis distances those times each component's precision. The algorithm is scikit-learn's (its k-means start, reg_covar, tolerance
on the mean log-likelihood, float64), so a fit lands where its fit lands (tests compare them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.cluster import KMeans

from ..errors import GenforgeError

REG_COVAR = 1e-6  # added to every variance, as scikit-learn does: no component collapses onto a point
TOL, MAX_ITER = 1e-3, 100
CHUNK = 8192  # codes per matrix product: bounds the memory of the coordinate products
CACHE_BYTES = 1 << 30  # products of all codes kept across steps up to this size (32-dim MNIST codes: 253 MB)


@dataclass
class Mixture:
    weights: torch.Tensor  # (K,)
    means: torch.Tensor  # (K, D)
    covariances: torch.Tensor  # (K, D, D)
    iterations: int
    converged: bool


def _pairs(x: torch.Tensor, diagonal: bool) -> torch.Tensor:
    """(n, P): x_i x_j for i <= j (P = D (D + 1) / 2), or x_i^2 alone for diagonal covariances."""
    if diagonal:
        return x * x
    i, j = torch.triu_indices(x.shape[1], x.shape[1])
    return x[:, i] * x[:, j]


class _Codes:
    """The codes in chunks, each with its coordinate products: computed once and kept when they fit
    in CACHE_BYTES (making them is as slow as a step's matrix products), else made again each step."""

    def __init__(self, x: torch.Tensor, diagonal: bool):
        self.x, self.diagonal = x, diagonal
        d = x.shape[1]
        size = x.shape[0] * (d if diagonal else d * (d + 1) // 2) * x.element_size()
        self.kept = [_pairs(c, diagonal) for c in x.split(CHUNK)] if size <= CACHE_BYTES else None

    def __iter__(self):
        for k, c in enumerate(self.x.split(CHUNK)):
            yield c, (self.kept[k] if self.kept is not None else _pairs(c, self.diagonal))


def _m_step(codes: _Codes, resp: torch.Tensor) -> tuple[torch.Tensor, ...]:
    x, diagonal = codes.x, codes.diagonal
    n, d = x.shape
    nk = resp.sum(0) + 10 * torch.finfo(x.dtype).eps
    means = resp.T @ x / nk[:, None]
    moments = sum(r.T @ pairs for (_, pairs), r in zip(codes, resp.split(CHUNK))) / nk[:, None]
    if diagonal:
        variances = moments - means ** 2 + REG_COVAR
        return nk / n, means, torch.diag_embed(variances)
    i, j = torch.triu_indices(d, d)
    upper = x.new_zeros(len(nk), d, d)
    upper[:, i, j] = moments
    second = upper + upper.transpose(1, 2) - torch.diag_embed(upper.diagonal(dim1=1, dim2=2))
    covariances = second - means[:, :, None] * means[:, None, :]
    return nk / n, means, covariances + REG_COVAR * torch.eye(d, dtype=x.dtype)


def _log_joint(codes: _Codes, weights: torch.Tensor, means: torch.Tensor, covariances: torch.Tensor) -> torch.Tensor:
    """(N, K): log weight_k + log N(x_n; mean_k, cov_k)."""
    x, diagonal = codes.x, codes.diagonal
    d = x.shape[1]
    try:
        chol = torch.linalg.cholesky(covariances)
    except torch.linalg.LinAlgError:
        raise GenforgeError("the mixture fit failed: a component's covariance is singular; fit fewer components "
                            "or use covariance=diag") from None
    log_det = 2 * chol.diagonal(dim1=1, dim2=2).log().sum(1)
    precision = torch.cholesky_inverse(chol)
    pm = (precision @ means[:, :, None]).squeeze(-1)  # P mu
    constant = (means * pm).sum(1)
    if diagonal:
        weight = precision.diagonal(dim1=1, dim2=2)
    else:  # x^T P x over the pairs i <= j: off-diagonal entries count twice
        i, j = torch.triu_indices(d, d)
        weight = precision[:, i, j] * torch.where(i == j, 1.0, 2.0).to(x.dtype)
    weight = weight.T.contiguous()
    rows = []
    for c, pairs in codes:
        # The expanded quadratic form can come out a hair below zero in float64: distances are not.
        mahalanobis = (pairs @ weight - 2 * c @ pm.T + constant).clamp_min(0)
        rows.append(weights.log() - 0.5 * (d * math.log(2 * math.pi) + log_det + mahalanobis))
    return torch.cat(rows)


def fit_mixture(codes: torch.Tensor, components: int, covariance: str = "full", seed: int = 0) -> Mixture:
    """A mixture of `components` Gaussians fitted to codes (N, D) by EM from a k-means start."""
    x = codes.detach().double().cpu()
    if not torch.isfinite(x).all():
        raise GenforgeError("the codes hold NaN or infinite values: the autoencoder has diverged; retrain it or "
                            "resume from an earlier checkpoint")
    # Centred, so the second moments minus the squared means (the expanded forms both steps use)
    # do not cancel away digits when the codes sit far from the origin; k-means does not mind.
    centre = x.mean(0)
    x = x - centre
    data = _Codes(x, covariance == "diag")
    start = KMeans(components, n_init=1, random_state=seed).fit(x.numpy()).labels_
    resp = torch.nn.functional.one_hot(torch.from_numpy(start.astype(np.int64)), components).double()
    weights, means, covariances = _m_step(data, resp)
    bound, converged, iteration = -math.inf, False, 0
    for iteration in range(1, MAX_ITER + 1):
        joint = _log_joint(data, weights, means, covariances)
        norm = torch.logsumexp(joint, 1)
        weights, means, covariances = _m_step(data, (joint - norm[:, None]).exp())
        previous, bound = bound, norm.mean().item()
        if abs(bound - previous) < TOL:
            converged = True
            break
    return Mixture(weights, means + centre, covariances, iteration, converged)
