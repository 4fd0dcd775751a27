"""Class swap with a conditional model: keep the style code, change the label.

A conditional model splits an image into its label and a code for everything else (the
style: slant, thickness, size). Inverting with the true label and generating with another
draws the same handwriting as another class. A conditional autoencoder inverts with its
encoder, a conditional GAN by latent search under the source label.

That split is not guaranteed. A conditional autoencoder whose code is rich enough can keep the
class in the code as well, and its decoder then follows the code rather than the label (the
Fashion-MNIST cvae-gan, given a shirt's code and the label "boot", drew the shirt: the classifier
read the target in 13.7% of 1000 swaps). Given a Gaussian fitted to each class's codes, the code
also moves from the source class's region to the target's by the optimal-transport map between
the two (`transport.py`), which keeps its place within the class: 13.7% -> 87.7% there, and
92.8% -> 98.2% for an MNIST cvae at its defaults, whose code holds little of the class
(bench/class_change_bench.py; BENCHMARKS.md).

The move goes a quarter past the target class by default (`strength` 1.25), as the attribute
edit goes half past: on the three Fashion-MNIST cvae-gan runs of the families table the target
was read in 90.3% of swaps at 1, 92.3% at 1.25, 92.0% at 1.5, and the swaps' FID against real
images of the target class fell from 52 to 37 and 34, at the price of some style (an edit nearer
its source than a random image of the target class: 14% -> 10% -> 8%).
"""

from __future__ import annotations

import torch

from ..errors import GenforgeError
from ..metrics.feature_net import FeatureNet
from ..models import GenerativeModel
from .encoder import InversionEncoder
from .fit import FitConfig
from .invert import generate, invert
from .transport import ClassGaussians

TRANSPORT_STRENGTH = 1.25


def swap_class(model: GenerativeModel, x: torch.Tensor, source: torch.Tensor, target: int | torch.Tensor,
               feature_net: FeatureNet | None = None, fit: FitConfig | None = None,
               progress: bool = False, encoder: InversionEncoder | None = None,
               classes: ClassGaussians | None = None, strength: float = TRANSPORT_STRENGTH) -> torch.Tensor:
    """Images x of classes `source` (N,) redrawn as class `target` in the same style.
    `classes`: Gaussians fitted to each class's codes, to move the code between as well, by
    `strength` times the transport map's move (1: onto the matching place in the target class)."""
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
    if classes is not None:
        z = z + strength * (classes.transport(z, source.cpu(), target.cpu()) - z)
    return generate(model, z, target)
