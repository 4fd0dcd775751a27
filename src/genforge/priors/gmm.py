"""A Gaussian mixture over the codes (Ghosh et al. 2020 fit one with 10 components).

Ten components are too few for the codes of a trained autoencoder: on the MNIST families runs
more components lowered FID at the same precision and recall, without the samples drifting onto
the training images (`bench/prior_sweep.py`; BENCHMARKS.md, prior-sweep blocks): beta-vae 50.4
(10) -> 17.0 (30) -> 8.5 (120), one mixture over all codes; cvae-gan 6.3 -> 4.0 -> 3.5, one
mixture per class. The default is 120 components for one mixture over all codes and 30 per class
for a conditional prior: past 30 a class's mixture gains little, and latent search evaluates
every component of the class at every step (120 per class in 128 dimensions: 1 s a step).

`covariance`: "full" (the default) or "diag". A full covariance per component has dim * (dim
+ 1) / 2 numbers: 8,256 at 128 dims, fitted from a few hundred codes each; diagonal ones trade
the correlations for far fewer numbers, which lets more components fit the same codes.

`max_codes`: fit each mixture to a seeded random subset of at most this many codes. EM's time
grows with the codes; a subset is faster but costs samples' quality (BENCHMARKS.md, prior-sweep
block gmm-max-codes), so the default (None) fits every code.

EM fits it (`em.py`: scikit-learn's algorithm, batched over the components in torch: the same
fit, up to 7x sooner; BENCHMARKS.md, mixture-fit block). The fitted weights, means and Cholesky
factors of the covariances are kept as tensors, so sampling and densities run in torch with a
seeded generator and the prior saves as safetensors. A conditional prior is one mixture per class.
"""

from __future__ import annotations

import math

import torch

from ..config_check import SEED, OneOf, Whole
from ..errors import ConfigError, GenforgeError
from .base import LatentPrior
from .em import fit_mixture

COVARIANCES = ("full", "diag")
COMPONENTS = 120  # default for one mixture over all codes
COMPONENTS_PER_CLASS = 30  # default for each class's mixture of a conditional prior


class GaussianMixturePrior(LatentPrior):
    """A Gaussian mixture over the codes, fitted by genforge's batched EM (em.py): 120 full
    components by default, or 30 per class for a conditional prior. Options: `components`,
    `covariance` ("full" or "diag"), `seed`, `max_codes` (fit a random subset: faster).
    It has a density (`log_prob`), so latent search can use it."""

    kind = "gmm"
    RULES = {"components": Whole(min=1, optional=True, none_means=f"{COMPONENTS}, or {COMPONENTS_PER_CLASS} per class"),
             "covariance": OneOf(*COVARIANCES), "seed": SEED,
             "max_codes": Whole(min=1, optional=True, none_means="every code")}

    def __init__(self, dim: int, num_classes: int = 0, components: int | None = None, covariance: str = "full",
                 seed: int = 0, max_codes: int | None = None):
        super().__init__(dim, num_classes)
        o = self.check_options(components=components, covariance=covariance, seed=seed, max_codes=max_codes)
        components, covariance, seed, max_codes = o["components"], o["covariance"], o["seed"], o["max_codes"]
        if components is None:
            components = COMPONENTS_PER_CLASS if num_classes else COMPONENTS
        if max_codes is not None and max_codes < components:
            raise ConfigError(f"gmm prior: max_codes must be a whole number of at least the {components} "
                              f"components, got {max_codes!r}")
        self.components, self.covariance, self.seed, self.max_codes = components, covariance, seed, max_codes
        groups = max(num_classes, 1)  # one mixture per class, or one for all codes
        self.register_buffer("weights", torch.full((groups, components), 1.0 / components))
        self.register_buffer("means", torch.zeros(groups, components, dim))
        self.register_buffer("scale_tril", torch.eye(dim).repeat(groups, components, 1, 1))

    def options(self) -> dict:
        return {"components": self.components, "covariance": self.covariance, "seed": self.seed,
                "max_codes": self.max_codes}

    def fit(self, z, labels=None):
        self.check_input(z, labels)
        groups = [z] if labels is None else [z[labels == c] for c in range(self.num_classes)]
        for g, codes in enumerate(groups):
            if len(codes) < self.components:
                raise GenforgeError(f"a {self.components}-component mixture needs at least {self.components} "
                                    f"codes{f' of class {g}' if labels is not None else ''}, got {len(codes)}")
            if self.max_codes is not None and len(codes) > self.max_codes:
                pick = torch.randperm(len(codes), generator=torch.Generator().manual_seed(self.seed + g))
                codes = codes[pick[:self.max_codes]]
            mixture = fit_mixture(codes, self.components, self.covariance, self.seed)
            self.weights[g] = mixture.weights
            self.means[g] = mixture.means
            self.scale_tril[g] = torch.linalg.cholesky(mixture.covariances)
        return self

    def sample(self, n, generator=None, labels=None, temperature=1.0):
        self.check_labels(labels, n)
        group = labels if labels is not None else torch.zeros(n, dtype=torch.long)
        component = torch.multinomial(self.weights[group], 1, generator=generator).squeeze(1)
        eps = temperature * torch.randn(n, self.dim, 1, generator=generator)  # each component widened
        return self.means[group, component] + (self.scale_tril[group, component] @ eps).squeeze(-1)

    def log_prob(self, z, labels=None):
        self.check_input(z, labels)
        group = labels if labels is not None else torch.zeros(len(z), dtype=torch.long, device=z.device)
        out = z.new_empty(len(z))
        # By hand rather than torch.distributions: MixtureSameFamily wants a (N, K, D, D) factor per
        # code, a copy of the class's factors for every code searched (500 MB per step for 768
        # 128-dim codes, 0.8 s a step with its gradient); here each class's K factors serve all
        # its codes at once.
        for g in group.unique().tolist():
            rows = group == g
            diff = (z[rows, None, :] - self.means[g]).permute(1, 2, 0)  # (K, D, n)
            white = torch.linalg.solve_triangular(self.scale_tril[g], diff, upper=False)
            log_det = self.scale_tril[g].diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (K,)
            log_normal = -0.5 * white.pow(2).sum(1) - log_det[:, None] - 0.5 * self.dim * math.log(2 * math.pi)
            out[rows] = torch.logsumexp(self.weights[g].log()[:, None] + log_normal, dim=0)
        return out
