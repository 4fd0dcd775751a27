"""The interface of an ex-post latent prior: a density over an autoencoder's codes, fitted
after training to where the encoder actually puts the training set (its aggregate posterior).

A VAE's aggregate posterior is not the N(0, I) its loss pulls it toward: there are holes
and clumps, and the standard normal's samples that land in the holes decode to blurs.
Sampling z from a density fitted to the codes of real images avoids them (Ghosh et al. 2020,
"From variational to deterministic autoencoders"; Dai & Wipf 2019, the two-stage VAE).

A prior is an `nn.Module` whose state (buffers, weights) is all tensors, so it is saved as
safetensors; `describe()` is the small JSON that rebuilds it. A prior may be conditional
(`num_classes` > 0): then it is fitted and sampled per class label. Priors whose density is
cheap to evaluate also have `log_prob(z, labels=None)`.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..config_check import Rule, Whole, check_values
from ..errors import GenforgeError


class LatentPrior(nn.Module):
    """A density over an autoencoder's codes, fitted after training: `fit(z, labels)` to the
    posterior means of the training set, then `sample(n, generator, labels, temperature)`.
    A conditional prior (num_classes > 0) fits and samples each class apart. Priors with a
    density also have `log_prob`, which latent search (inpainting) uses."""

    kind: ClassVar[str] = ""
    # What each constructor option accepts (config_check.py); `genforge prior --set` reaches them.
    RULES: ClassVar[dict[str, Rule]] = {}

    def __init__(self, dim: int, num_classes: int = 0):
        super().__init__()
        check_values("latent prior", {"dim": Whole(min=1), "num_classes": Whole(min=0)},
                     {"dim": dim, "num_classes": num_classes})
        self.dim, self.num_classes = dim, num_classes

    @classmethod
    def check_options(cls, **options) -> dict:
        """The options checked against RULES and converted (e.g. from `--set` text); an unknown
        name or a value out of range raises ConfigError naming it."""
        return check_values(f"{cls.kind} prior", cls.RULES, options, noun="option")

    def options(self) -> dict:
        """The constructor's keyword options (JSON-able), stored beside the tensors."""
        return {}

    def describe(self) -> dict:
        return {"kind": self.kind, "dim": self.dim, "num_classes": self.num_classes, "options": self.options()}

    def fit(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> "LatentPrior":
        """Fits the density to codes z (N, dim) (of classes `labels` for a conditional prior)."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None,
               labels: torch.Tensor | None = None, temperature: float = 1.0) -> torch.Tensor:
        """n codes (n, dim) on the CPU; the same seeded generator gives the same codes.
        `temperature` scales the noise the codes are made from (1: the fitted density)."""
        raise NotImplementedError

    def check_input(self, z: torch.Tensor, labels: torch.Tensor | None) -> None:
        if z.ndim != 2 or z.shape[1] != self.dim:
            raise GenforgeError(f"a {self.kind} prior over {self.dim}-d codes got codes of shape {tuple(z.shape)}")
        self.check_labels(labels, len(z))

    def check_labels(self, labels: torch.Tensor | None, n: int) -> None:
        if self.num_classes and (labels is None or len(labels) != n):
            raise GenforgeError(f"this {self.kind} prior is conditional: it needs one class label per code")
        if not self.num_classes and labels is not None:
            raise GenforgeError(f"this {self.kind} prior was fitted without labels; it cannot take any")
        if labels is not None and not (0 <= int(labels.min()) and int(labels.max()) < self.num_classes):
            raise GenforgeError(f"labels must lie in 0-{self.num_classes - 1}")
