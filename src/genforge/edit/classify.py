"""What the data set's shipped classifier reads in images: the judge of every class edit."""

from __future__ import annotations

import torch

from ..metrics.feature_net import FeatureNet

BATCH = 500


def class_reads(net: FeatureNet, x: torch.Tensor) -> torch.Tensor:
    """The classifier's most likely class (N,) for images (N, C, H, W) in [0, 1]."""
    with torch.inference_mode():
        return torch.cat([net(x[i:i + BATCH]).argmax(1) for i in range(0, len(x), BATCH)])


def features(net: FeatureNet, x: torch.Tensor) -> torch.Tensor:
    """The classifier's penultimate-layer features (N, D), what FID and style distances compare."""
    with torch.inference_mode():
        return torch.cat([net.features_and_logits(x[i:i + BATCH])[0] for i in range(0, len(x), BATCH)])
