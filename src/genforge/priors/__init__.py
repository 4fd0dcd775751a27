"""Ex-post latent priors for autoencoders. A new prior is one new file plus one line in PRIORS.

    prior = fit_prior("gmm", codes)           # codes: posterior means of the training set
    save_prior(prior, run.prior)              # prior.safetensors + prior.json beside it
    z = load_prior(run.prior).sample(64, torch.Generator().manual_seed(0))
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import RunError, UnknownName
from ..train.checkpoint import atomic_write, load_weights, read_safetensors, save_weights
from .base import LatentPrior
from .flow import FlowPrior
from .gmm import GaussianMixturePrior

PRIORS: dict[str, type[LatentPrior]] = {p.kind: p for p in (GaussianMixturePrior, FlowPrior)}


def prior_class(kind: str) -> type[LatentPrior]:
    """The prior class of `kind` ("gmm" or "flow"); UnknownName lists the kinds."""
    try:
        return PRIORS[kind]
    except KeyError:
        raise UnknownName(f"unknown prior {kind!r}; choose one of: {', '.join(PRIORS)}") from None


def fit_prior(kind: str, z: torch.Tensor, labels: torch.Tensor | None = None, num_classes: int | None = None,
              **options) -> LatentPrior:
    """A prior of `kind` fitted to codes z (N, dim); with labels, one conditioned on the class
    (of `num_classes` classes, by default as many as the labels show)."""
    if labels is not None and num_classes is None:
        num_classes = int(labels.max()) + 1
    cls = prior_class(kind)
    options = cls.check_options(**options)  # an unknown option or a bad value: one ConfigError line
    return cls(z.shape[1], num_classes or 0, **options).fit(z, labels)


def card_path(path: Path) -> Path:
    """The JSON that says how to rebuild the prior whose tensors are in `path`."""
    return Path(path).with_suffix(".json")


def save_prior(prior: LatentPrior, path: str | Path) -> None:
    """Writes a fitted prior: its tensors to `path` (safetensors) and its card (kind, options)
    to prior.json beside it, each atomically."""
    path = Path(path)
    # The card goes first and comes back last: a prior whose card exists has its tensors complete.
    card_path(path).unlink(missing_ok=True)
    save_weights(path, prior)
    atomic_write(card_path(path), (json.dumps(prior.describe(), indent=2) + "\n").encode())


def delete_prior(path: str | Path) -> None:
    card_path(path).unlink(missing_ok=True)  # the card first: without it the tensors are not a prior
    Path(path).unlink(missing_ok=True)


def load_prior(path: str | Path) -> LatentPrior:
    """Reads a prior written by `save_prior`; RunError if its card is missing or damaged."""
    path = Path(path)
    try:
        card = json.loads(card_path(path).read_text())
        prior = prior_class(card["kind"])(card["dim"], card["num_classes"], **card["options"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunError(f"{card_path(path)} is missing or not a genforge prior card ({e})") from None
    tensors, _ = read_safetensors(path)
    load_weights(prior, tensors, path)
    return prior.eval()


__all__ = ["PRIORS", "LatentPrior", "delete_prior", "fit_prior", "load_prior", "save_prior"]
