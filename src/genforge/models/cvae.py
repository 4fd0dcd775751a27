"""Conditional VAE (Sohn et al. 2015): encoder and decoder both see the class label.

The label enters the encoder as one constant one-hot plane per class beside the image, and
the decoder as a one-hot vector beside z. Given the label, the code is free to hold what the
label does not say (style: slant, thickness), so decoding one z with each label writes the
same style as each class.

That holds while the KL weight `beta` (1, the ELBO) keeps the code lean. A smaller one (0.1,
with a 32-dim code) samples much better through the class-wise latent prior, but the code then
carries the class as well, so changing the label alone no longer swaps it; the class swap of
`genforge edit` therefore also moves the code between the two classes' codes (edit/swap_class.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config_check import Whole
from .vae import VAE, VAEConfig


@dataclass
class CVAEConfig(VAEConfig):
    num_classes: int = 10

    RULES = {"num_classes": Whole(min=2)}


class CVAE(VAE):
    name = "cvae"
    Config = CVAEConfig
    is_conditional = True

    def condition_size(self) -> int:
        return self.config.num_classes

    def one_hot(self, labels: torch.Tensor | None) -> torch.Tensor:
        if labels is None:
            raise ValueError("the conditional VAE needs the class labels")
        return F.one_hot(labels.long(), self.config.num_classes).float()

    def encode(self, x, labels=None):
        planes = self.one_hot(labels)[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return super().encode(torch.cat([x, planes], dim=1))

    def decode_logits(self, z, labels=None):
        return super().decode_logits(torch.cat([z, self.one_hot(labels)], dim=1))
