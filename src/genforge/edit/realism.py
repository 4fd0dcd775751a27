"""The realism check: does an edited image still look real?

Two judges: a GAN's own discriminator (for its own edits), and a trained genforge detector
(issue 6), which judges the edits of any model, autoencoders included.
"""

from __future__ import annotations

import torch

from ..detect.detector import Detector
from ..models import GenerativeModel

BATCH = 500


def realism(model: GenerativeModel, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor | None:
    """The discriminator's probability (N,) that each image is real, or None without a discriminator."""
    if not model.has_discriminator:
        return None
    with torch.inference_mode():
        logits = torch.cat([model.discriminate(x[i:i + BATCH].to(model.device),
                                               None if labels is None else labels[i:i + BATCH].to(model.device)).cpu()
                            for i in range(0, len(x), BATCH)])
    return torch.sigmoid(logits)


def detector_realism(detector: Detector, x: torch.Tensor) -> torch.Tensor:
    """The detector's probability (N,) that each image is real (neither generated nor edited)."""
    return 1 - detector.predict(x, batch_size=BATCH)[0]  # predict moves x to the detector and back
