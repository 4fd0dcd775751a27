"""Attribute vectors (Larsen et al. 2016; White 2016): the difference between the mean codes of
two groups of images is a direction that adds what the second group has and the first lacks.

Groups are classes ("3" to "8"), or the two ends of a property measured on the pixels: stroke
thickness (ink mass) or slant (from the image's second moments), and for colour images the
figure's saturation, brightness or area (colour.py). Asked for an amount of a property
(`hue=+0.2`), the edit is instead calibrated: a regression of every property on the code, the
smallest move that changes the one asked and holds the others, and a line search (calibrate.py). Adding the vector to a code
changes that attribute and, since the rest of the code stays, keeps the handwriting.
"""

from __future__ import annotations

import torch

from ..errors import GenforgeError
from ..metrics.feature_net import FeatureNet
from ..models import GenerativeModel
from . import colour
from .classify import class_reads
from .invert import generate


def ink_mass(x: torch.Tensor) -> torch.Tensor:
    """Mean intensity (N,) of images in [0, 1]: for strokes of one length, their thickness."""
    return x.mean(dim=(1, 2, 3))


def slant(x: torch.Tensor) -> torch.Tensor:
    """Shear (N,) of each image's ink, from its second moments: 0 upright, > 0 leaning right."""
    w = x.mean(1)  # (N, H, W) ink as mass
    h, wd = w.shape[1:]
    ys = torch.arange(h, dtype=w.dtype).view(1, h, 1)
    xs = torch.arange(wd, dtype=w.dtype).view(1, 1, wd)
    mass = w.sum((1, 2)).clamp(min=1e-8)
    cy, cx = (w * ys).sum((1, 2)) / mass, (w * xs).sum((1, 2)) / mass
    dy, dx = ys - cy.view(-1, 1, 1), xs - cx.view(-1, 1, 1)
    mu11, mu02 = (w * dx * dy).sum((1, 2)), (w * dy * dy).sum((1, 2)).clamp(min=1e-8)
    return -mu11 / mu02  # image y grows downwards, so a right lean has negative covariance


# Measured properties: thickness and slant for digits; hue, saturation, brightness and the area
# the figure covers for colour images, measured on the figure's pixels (colour.py, which also
# gives their units). Each takes images (N, C, H, W) in [0, 1]; the colour ones also the
# background colour the figure stands on.
PROPERTIES = {"thickness": ink_mass, "slant": slant, "hue": colour.hue, "saturation": colour.saturation,
              "brightness": colour.brightness, "area": colour.area}


def class_means(codes: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean code (K, D) of each class."""
    counts = torch.bincount(labels, minlength=num_classes)
    if (counts == 0).any():
        missing = (counts == 0).nonzero().flatten().tolist()
        raise GenforgeError(f"no labelled codes of class(es) {missing}; cannot make their attribute vectors")
    sums = torch.zeros(num_classes, codes.shape[1], dtype=codes.dtype).index_add_(0, labels, codes)
    return sums / counts[:, None]


def toward_class(z: torch.Tensor, source: torch.Tensor, target: int | torch.Tensor, means: torch.Tensor,
                 strength: float = 1.0) -> torch.Tensor:
    """Codes moved by `strength` times the vector from each one's source class mean to the target's."""
    return z + strength * (means[target] - means[source])


def property_vector(codes: torch.Tensor, values: torch.Tensor, fraction: float = 0.25) -> torch.Tensor:
    """Mean code of the `fraction` of images highest in a property minus that of the lowest."""
    order = values.argsort()
    k = max(1, int(len(order) * fraction))
    return codes[order[-k:]].mean(0) - codes[order[:k]].mean(0)


def sampled_codes(model: GenerativeModel, feature_net: FeatureNet, n: int,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes (n, D) drawn from the prior, their images, and the classes the classifier reads in
    them: labelled codes for a model without an encoder (the InterFaceGAN recipe)."""
    z = model.latent(n, generator).cpu()
    labels = model.random_labels(n, generator) if model.is_conditional else None
    images = generate(model, z, labels)
    return z, images, class_reads(feature_net, images)
