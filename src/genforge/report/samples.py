"""The report's sample pictures, drawn through a trained model's public interface
(`genforge.load` / `Model.sample`), so the report shows what `genforge sample` gives.

An autoencoder samples from the latent prior fitted after training (priors/): its codes do
not follow the N(0, I) that training's sample grids were drawn from, so those grids can look
like noise while the fitted prior gives clean images. The report therefore draws from the
prior the model will sample from, and names it in words.
"""

from __future__ import annotations

import numpy as np
import torch

from .grid import make_grid, with_row_labels

SEED = 0  # `genforge sample`'s default seed: the report's grid is what it writes
N_SAMPLES = 64  # 8 x 8, tiled as `genforge sample --n 64 --grid` tiles them
PER_CLASS = 8  # images in each class's row
CLASS_GRID_SCALE = 2  # per-class grids are drawn twice size, so their row labels fit


def prior_in_words(model, prior: str = "auto") -> str:
    """Where `model.sample(..., prior=prior)` draws its latent codes from, in a phrase."""
    fitted = model.prior if prior != "none" else None
    if fitted is None:
        if model.module.is_autoencoder:
            return "the standard normal N(0, I) (no latent prior fitted; `genforge prior RUN` fits one)"
        return "the standard normal N(0, I), the prior the model was trained with"
    info = fitted.describe()
    options = info["options"]
    per_class = " per class" if info["num_classes"] else ""
    if info["kind"] == "gmm":
        return (f"the fitted latent prior, a Gaussian mixture (`gmm`: {options['components']} components{per_class}, "
                f"{options['covariance']} covariances) fitted to the codes of the training images")
    if info["kind"] == "flow":
        return (f"the fitted latent prior, a rectified flow (`flow`: a {options['hidden']}-unit network carrying "
                f"N(0, I) onto the codes{', conditioned on the class' if per_class else ''}) fitted to the codes "
                "of the training images")
    return f"the fitted latent prior `{info['kind']}`"


def sample_grid(model, prior: str = "auto", n: int = N_SAMPLES, seed: int = SEED) -> np.ndarray:
    """n samples (random classes for a conditional model) tiled as `genforge sample --grid` tiles them."""
    return make_grid(model.sample(n, seed=seed, prior=prior))


def class_rows(model, prior: str = "auto", per_class: int = PER_CLASS, seed: int = SEED) -> torch.Tensor:
    """A conditional model's samples, class after class: row k is `model.sample(per_class,
    seed=seed, labels=k)`, that is `genforge sample RUN --n per_class --label k --seed seed`."""
    classes = model.module.config.num_classes
    return torch.cat([model.sample(per_class, seed=seed, labels=k, prior=prior) for k in range(classes)])


def class_grid(model, names: list[str] | None = None, prior: str = "auto", per_class: int = PER_CLASS,
               seed: int = SEED) -> np.ndarray:
    """One row per class (`class_rows`), each labelled with its class name on the left."""
    classes = model.module.config.num_classes
    names = names if names and len(names) == classes else [str(k) for k in range(classes)]
    grid = make_grid(class_rows(model, prior, per_class, seed), nrow=per_class, scale=CLASS_GRID_SCALE)
    return with_row_labels(grid, names, scale=CLASS_GRID_SCALE)
