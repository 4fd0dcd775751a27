"""Negative log-likelihood of a VAE by importance sampling (Burda et al. 2016).

    log p(x) ~= log (1/k) sum_i p(x | z_i) p(z_i) / q(z_i | x),   z_i ~ q(z | x)

With k = 1 this is the ELBO's single-sample estimate; it tightens as k grows. Published
numbers (about 86-90 nats for a plain VAE) are on binarised MNIST, so for a Bernoulli decoder
images are binarised here by a fixed threshold at 0.5 (stated with the result): a Bernoulli
likelihood is only a probability on binary pixels. A discretised-logistic decoder (the colour
VAEs) gives a probability to each 8-bit value, so its images are scored as they are and the
result is also given in bits per dimension, the unit of the colour literature (CIFAR-10).
A Gaussian decoder is a density over continuous pixels, not a probability of the 8-bit image:
no number is reported for it rather than one that cannot be compared.
"""

from __future__ import annotations

import math

import torch

from ..errors import GenforgeError
from .base import Metric

BINARISATION = "threshold at 0.5"
EIGHT_BIT = "none (8-bit pixels)"
SCORED = {"bernoulli": BINARISATION, "discretised-logistic": EIGHT_BIT}  # likelihood -> how images are scored


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (((z - mu) ** 2) / logvar.exp() + logvar + math.log(2 * math.pi)).sum(-1)


@torch.inference_mode()
def importance_log_likelihood(model, x: torch.Tensor, k: int = 100, generator: torch.Generator | None = None,
                              chunk: int = 5000) -> torch.Tensor:
    """log p(x) estimates (N,) in nats; `model` has encode(x) -> (mu, logvar) and log_likelihood(x, z)."""
    if not hasattr(model, "log_likelihood"):
        raise GenforgeError(f"model {getattr(model, 'name', '?')!r} has no likelihood to estimate")
    mu, logvar = model.encode(x)
    out = []
    per = max(1, chunk // k)  # images per pass, so k samples each stay within `chunk` decodes
    for i in range(0, len(x), per):
        m, lv, xs = mu[i:i + per], logvar[i:i + per], x[i:i + per]
        eps = torch.randn(k, *m.shape, generator=generator).to(m.device)
        z = m + eps * (0.5 * lv).exp()  # (k, b, d)
        log_px_z = model.log_likelihood(xs.repeat(k, 1, 1, 1), z.flatten(0, 1)).view(k, -1)
        log_pz = _log_normal(z, torch.zeros_like(z), torch.zeros_like(z))
        log_qz = _log_normal(z, m, lv)
        out.append(torch.logsumexp(log_px_z + log_pz - log_qz, 0) - math.log(k))
    return torch.cat(out)


class ImportanceNLL(Metric):
    """Mean negative log-likelihood in nats over the images seen: on binarised pixels for a
    Bernoulli decoder, on the 8-bit pixels (and in bits per dimension) for a discretised logistic."""

    def __init__(self, model, k: int = 100, seed: int = 0):
        kind = getattr(getattr(model, "config", None), "likelihood", "bernoulli")
        if kind not in SCORED:
            raise GenforgeError(f"a {kind!r} decoder gives a density, not a probability of 8-bit images: "
                                f"no likelihood is estimated for it (use {' or '.join(SCORED)})")
        self.model, self.k, self.seed, self.kind = model, k, seed, kind
        super().__init__()

    def reset(self) -> None:
        self._sum, self._n = 0.0, 0
        self._generator = torch.Generator().manual_seed(self.seed)

    def update(self, images: torch.Tensor) -> None:
        x = images.float()
        if images.dtype == torch.uint8:
            x = x / 255
        if self.kind == "bernoulli":
            x = (x > 0.5).float()
        ll = importance_log_likelihood(self.model, x, self.k, self._generator)
        self._sum -= float(ll.sum())
        self._n += len(ll)
        self._dims = x[0].numel()

    def compute(self) -> dict:
        if self._n == 0:
            raise GenforgeError("no images were given to the likelihood estimate")
        out = {"nll": self._sum / self._n, "nll_k": self.k, "nll_binarisation": SCORED[self.kind]}
        if self.kind == "discretised-logistic":
            out["bits_per_dim"] = out["nll"] / (self._dims * math.log(2))
        return out
