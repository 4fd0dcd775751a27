"""Inpainting: fill the missing pixels of an image with a model's idea of what goes there.

The model's fill comes from the code whose image best matches the pixels that are there
(latent search over the known pixels, Yeh et al. 2017), started from the encoder for an
autoencoder and, on request, from the codes of the training images nearest on the known pixels:
a start that already holds a whole real image of a fitting class, which matters most when the
class has to be found too (MNIST cgan without the label, centre box read right 68% -> 87%).
Only masked pixels change, unless blending feathers the fill across the border.
One search gives one sharp completion; `samples` > 1 averages several searches from different
random starts, an estimate of the posterior mean: softer, and the fill with the least expected
squared error when the hole leaves the content open. Two baselines show what the model adds:
the mean training image, and the training image closest on the known pixels.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

from ..errors import GenforgeError
from ..metrics.reconstruction import gaussian_window
from ..models import GenerativeModel
from ..priors import LatentPrior
from .encoder import InversionEncoder, guess_codes
from .fit import FitConfig, fit_latents
from .invert import encode, generate

NEAREST_BATCH = 256


def composite(x: torch.Tensor, fill: torch.Tensor, mask: torch.Tensor, blend: float = 0.0) -> torch.Tensor:
    """x with its masked pixels (mask 1) taken from `fill`. With `blend` > 0 (a Gaussian sigma in
    pixels) the fill also fades into the known pixels next to the mask, hiding the seam."""
    if blend <= 0:
        return torch.where(mask.bool(), fill, x)
    alpha = torch.maximum(mask, _blur(mask, blend))
    return alpha * fill + (1 - alpha) * x


def _blur(mask: torch.Tensor, sigma: float) -> torch.Tensor:
    size = 2 * math.ceil(2 * sigma) + 1
    kernel = gaussian_window(size, sigma).to(mask.dtype)[None, None]
    return F.conv2d(F.pad(mask, [size // 2] * 4, mode="replicate"), kernel)


def inpaint(model: GenerativeModel, x: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor | None = None,
            blend: float = 0.0, fit: FitConfig | None = None, samples: int = 1,
            prior: LatentPrior | None = None, progress: bool = False, neighbours: int = 0,
            train: tuple[torch.Tensor, torch.Tensor | None] | None = None,
            encoder: InversionEncoder | None = None) -> torch.Tensor:
    """Images x (N, C, H, W) with the pixels under `mask` ((N or 1), 1, H, W; 1 = missing) filled by
    the model: its completion, or with `samples` > 1 the mean of that many (search seeds fit.seed,
    fit.seed + 1, ...). `prior`: the autoencoder's fitted latent prior to search under. A
    conditional model given no labels searches for the class too.

    `neighbours` > 0: the codes of that many training images nearest on the known pixels (`train`:
    images in [0, 1] and their labels) join the guesses the search starts from, encoded by the
    autoencoder or by a GAN's inversion `encoder`; a conditional model searching the class
    guesses each neighbour's code under the neighbour's label."""
    fit = fit or FitConfig()
    if neighbours > 0:  # the best two guesses (an autoencoder's own, the neighbours') get starts (BENCHMARKS.md)
        fit = dataclasses.replace(fit, guess_starts=max(fit.guess_starts, 2))
    known = 1 - mask
    guesses = _guesses(model, x, known, labels, neighbours, train, encoder)
    fills = []
    for k in range(samples):
        config = dataclasses.replace(fit, seed=fit.seed + k)
        # No feature loss: the features of an image with a hole describe the hole.
        found = fit_latents(model, x, labels, known=known, init=None if guesses is None else guesses[0],
                            init_labels=None if guesses is None else guesses[1], config=config, prior=prior,
                            progress=progress)
        fills.append(generate(model, found.z, found.labels))
    return composite(x, torch.stack(fills).mean(0), mask.expand(len(x), *mask.shape[1:]), blend)


def _guesses(model, x, known, labels, neighbours, train, encoder):
    """Codes (N, G, latent_dim) for the search to start from, with their labels (N, G) when the
    labels are searched (else None); None without any guess."""
    searched = model.is_conditional and labels is None
    codes, code_labels = [], []
    # The encoder never saw holes; showing it the hole as black (the usual background) is
    # closer to its training data than any fill we could invent. A conditional encoder needs
    # the label; without one, it guesses under every class.
    if model.is_autoencoder:
        classes = range(model.config.num_classes) if searched else [None]
        for k in classes:
            given = labels if k is None else torch.full((len(x),), k, dtype=torch.long)
            codes.append(encode(model, x * known, given))
            code_labels.append(given)
    if neighbours > 0:
        if train is None:
            raise GenforgeError("inpainting from training neighbours needs the training images")
        if not model.is_autoencoder and encoder is None:
            raise GenforgeError(f"model {model.name!r} has no encoder to read its training neighbours' codes; "
                                "use the hybrid inversion encoder")
        images, train_labels = train
        if searched and train_labels is None:
            raise GenforgeError("the training images have no labels to guess the class from")
        index = nearest_indices(x, 1 - known, images, neighbours)
        for j in range(index.shape[1]):
            given = train_labels[index[:, j]] if searched else labels
            near = images[index[:, j]].float()
            codes.append(encode(model, near, given) if model.is_autoencoder
                         else guess_codes(encoder, near.to(model.device)).cpu())
            code_labels.append(given)
    if not codes:
        return None
    return torch.stack(codes, 1), torch.stack(code_labels, 1) if searched else None


def mean_fill(x: torch.Tensor, mask: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """The baseline that fills every hole with the mean of the training images (N, C, H, W) in [0, 1]."""
    return composite(x, train.float().mean(0, keepdim=True).expand_as(x), mask.expand(len(x), *mask.shape[1:]))


def nearest_fill(x: torch.Tensor, mask: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """The baseline that fills each hole from the training image nearest on the known pixels."""
    mask = mask.expand(len(x), *mask.shape[1:])
    return composite(x, train[nearest_indices(x, mask, train, 1)[:, 0]], mask)


def nearest_indices(x: torch.Tensor, mask: torch.Tensor, train: torch.Tensor, k: int = 1) -> torch.Tensor:
    """(N, k) indices of the training images (M, C, H, W) nearest each image of x on its known
    pixels (mask 0), nearest first."""
    mask = mask.expand(len(x), *mask.shape[1:])
    t = train.flatten(1).float()
    t_sq = t.pow(2)
    found = []
    for i in range(0, len(x), NEAREST_BATCH):
        known = (1 - mask[i:i + NEAREST_BATCH]).expand_as(x[i:i + NEAREST_BATCH]).flatten(1)
        xk = x[i:i + NEAREST_BATCH].flatten(1) * known
        # sum_p known (x - t)^2, expanded so the whole training set is two matrix products
        distance = (xk * xk).sum(1, keepdim=True) - 2 * xk @ t.T + known @ t_sq.T
        found.append(distance.topk(k, dim=1, largest=False).indices)
    return torch.cat(found)
