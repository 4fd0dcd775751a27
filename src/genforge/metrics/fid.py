"""Fréchet distance between Gaussians fitted to real and fake features (Heusel et al. 2017).

By hand rather than torchmetrics' FrechetInceptionDistance: that class owns its Inception
network and its real-side state, while here the real statistics are cached on disk as
(mu, sigma) and reused across runs, and the features are computed once by the evaluation
pipeline and shared with KID and precision/recall. Neither fits its interface cleanly.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..errors import GenforgeError
from .base import Metric, as_features


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (float64 numpy, unbiased) of a (N, D) feature set."""
    x = as_features(features).double().numpy()
    if len(x) < 2:
        raise GenforgeError(f"need at least 2 feature vectors for a covariance, got {len(x)}")
    return x.mean(0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2))."""
    from scipy.linalg import sqrtm  # imported here so the rest of genforge never needs scipy

    mu1, mu2 = (np.atleast_1d(np.asarray(m, dtype=np.float64)) for m in (mu1, mu2))
    sigma1, sigma2 = (np.atleast_2d(np.asarray(s, dtype=np.float64)) for s in (sigma1, sigma2))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,) or sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise GenforgeError(
            f"statistics do not match: means {mu1.shape} and {mu2.shape}, "
            f"covariances {sigma1.shape} and {sigma2.shape}"
        )

    def root(a):
        with warnings.catch_warnings():  # a singular product is handled below, not reported
            warnings.simplefilter("ignore")
            r = sqrtm(a)
        ok = np.isfinite(r).all() and np.linalg.norm(r @ r - a) <= 1e-5 * max(np.linalg.norm(a), 1e-300)
        return r, ok

    covmean, ok = root(sigma1 @ sigma2)
    if not ok:
        # Fewer samples than dimensions make the covariances (and their product) singular,
        # and the square root of a singular matrix is ill-conditioned; a tiny ridge fixes it.
        ridge = eps * np.eye(d)
        covmean, _ = root((sigma1 + ridge) @ (sigma2 + ridge))
        if not np.isfinite(covmean).all():
            raise GenforgeError("could not compute the matrix square root for the Fréchet distance")
    if np.iscomplexobj(covmean):
        # sigma1 sigma2 is similar to a PSD matrix, so its root is real up to rounding;
        # a large imaginary part means the statistics are not covariances.
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > 1e-3 * max(1.0, np.abs(np.diagonal(covmean).real).max()):
            raise GenforgeError(f"matrix square root has an imaginary component of {imag:.3g}")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


class _Moments:
    """Running n, sum x and sum x x^T in float64, so 10k x 512 features cost 2 MB, not 40."""

    def __init__(self):
        self.n, self.shift, self.sum, self.outer = 0, None, None, None

    def add(self, x: torch.Tensor) -> None:
        x = x.double()
        if self.shift is None:
            # Sums of x - c for c the first batch's mean: the covariance is then
            # outer/n - mean mean^T with a small mean, so nothing large cancels.
            self.shift = x.mean(0)
            self.sum = torch.zeros_like(self.shift)
            self.outer = torch.zeros(len(self.shift), len(self.shift), dtype=torch.float64)
        x = x - self.shift
        self.n += len(x)
        self.sum += x.sum(0)
        self.outer += x.T @ x

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise GenforgeError(f"need at least 2 feature vectors for a covariance, got {self.n}")
        mean = self.sum / self.n
        sigma = (self.outer - self.n * torch.outer(mean, mean)) / (self.n - 1)
        return (mean + self.shift).numpy(), sigma.numpy()


class FID(Metric):
    """FID on features: `update(features, real=...)` for both sides, then `compute()`.

    Real statistics can come from a cache instead, via `set_real_stats(mu, sigma)`;
    `reset(keep_real=True)` keeps them (or the real features seen so far) for the next model.
    """

    def reset(self, keep_real: bool = False) -> None:
        if not keep_real:
            self._real, self._real_stats = _Moments(), None
        self._fake = _Moments()

    def update(self, features, real: bool) -> None:
        x = as_features(features)
        if len(x) == 0:
            return
        if real and self._real_stats is not None:
            raise GenforgeError("real statistics were set with set_real_stats(); reset() before adding real features")
        side = self._real if real else self._fake
        if side.shift is not None and x.shape[1] != len(side.shift):
            raise GenforgeError(f"features have {x.shape[1]} dimensions, earlier ones had {len(side.shift)}")
        side.add(x)

    def set_real_stats(self, mu, sigma) -> None:
        """Use cached real statistics (e.g. from `real_stats()` of an earlier run)."""
        if self._real.n:
            raise GenforgeError("real features were already added; reset() before setting real statistics")
        self._real_stats = (np.asarray(mu, dtype=np.float64), np.asarray(sigma, dtype=np.float64))

    def real_stats(self) -> tuple[np.ndarray, np.ndarray]:
        return self._real_stats if self._real_stats is not None else self._real.stats()

    def fake_stats(self) -> tuple[np.ndarray, np.ndarray]:
        return self._fake.stats()

    def compute(self) -> float:
        return frechet_distance(*self.real_stats(), *self.fake_stats())
