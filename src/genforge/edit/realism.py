"""The realism check: does an edited image still look real? A GAN's discriminator answers;
models without one have nobody to ask yet (the detector of issue 6 will be the judge)."""

from __future__ import annotations

import torch

from ..models import GenerativeModel

BATCH = 500


def realism(model: GenerativeModel, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor | None:
    """The discriminator's probability (N,) that each image is real, or None without a discriminator."""
    if not model.has_discriminator:
        return None
    with torch.inference_mode():
        logits = torch.cat([model.discriminate(x[i:i + BATCH], None if labels is None else labels[i:i + BATCH])
                            for i in range(0, len(x), BATCH)])
    return torch.sigmoid(logits)
