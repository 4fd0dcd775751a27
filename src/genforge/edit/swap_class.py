"""Class swap with a conditional model: keep the style code, change the label.

A conditional model splits an image into its label and a code for everything else (the
style: slant, thickness, size). Inverting with the true label and generating with another
draws the same handwriting as another class. A conditional autoencoder inverts with its
encoder, a conditional GAN by latent search under the source label.

That split is not guaranteed. A conditional autoencoder whose code is rich enough can keep the
class in the code as well, and its decoder then follows the code rather than the label (the
Fashion-MNIST cvae-gan, given a shirt's code and the label "boot", drew the shirt: the classifier
read the target in 13.8% of 1000 swaps). Given each class's mean code, the code also moves from
the source's mean to the target's, as the attribute edit moves it; where the code holds no
class the means coincide and the move is nothing.
"""

from __future__ import annotations

import torch

from ..errors import GenforgeError
from ..metrics.feature_net import FeatureNet
from ..models import GenerativeModel
from .attribute import toward_class
from .encoder import InversionEncoder
from .fit import FitConfig
from .invert import generate, invert


def swap_class(model: GenerativeModel, x: torch.Tensor, source: torch.Tensor, target: int | torch.Tensor,
               feature_net: FeatureNet | None = None, fit: FitConfig | None = None,
               progress: bool = False, encoder: InversionEncoder | None = None,
               class_means: torch.Tensor | None = None) -> torch.Tensor:
    """Images x of classes `source` (N,) redrawn as class `target` in the same style.
    `class_means` (num_classes, latent_dim): the mean code of each class, to move the code by too."""
    if not model.is_conditional:
        raise GenforgeError(f"model {model.name!r} is not conditional; swap-class needs a conditional model "
                            "such as 'cvae' or 'cgan' (use the attribute edit for this one)")
    target = torch.as_tensor(target).expand(len(x)).to(source.device)
    num_classes = model.config.num_classes
    bad = target[(target < 0) | (target >= num_classes)]
    if len(bad):
        raise GenforgeError(f"class {bad[0].item()} does not exist; model {model.name!r} has classes "
                            f"0-{num_classes - 1}")
    z = invert(model, x, source, feature_net=feature_net, fit=fit, progress=progress, encoder=encoder)
    if class_means is not None:
        z = toward_class(z, source.cpu(), target.cpu(), class_means)
    return generate(model, z, target)
