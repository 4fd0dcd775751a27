"""How near samples come to the training images, against how near unseen real images come.

Scores against the test split cannot tell a model that learned the distribution from one that
replays its training set: training and test images are drawn alike. A latent prior with a
component for every few codes drifts toward the second kind, so priors are compared with this
beside precision and recall (the data-copying test of Meehan et al. 2020 and the authenticity of
Alaa et al. 2022 ask the same question). For each sample: the feature distance to its nearest
training image; the same for each held-out real image.
- `nn_ratio`: median sample distance / median held-out distance. About 1 when samples are as
  new as unseen real images; below 1 when they sit on training images.
- `copies`: the share of samples nearer a training image than 99% of held-out images are; about
  0.01 for a model that copies nothing.
"""

from __future__ import annotations

import torch

from ..errors import GenforgeError
from ._knn import nearest_distance
from .base import Metric, as_features

KINDS = ("train", "heldout", "fake")


class TrainingDistance(Metric):
    """`update(features, kind)` with kind "train", "heldout" or "fake", then `compute()` ->
    {"nn_ratio", "copies"}."""

    def reset(self) -> None:
        self._features: dict[str, list[torch.Tensor]] = {kind: [] for kind in KINDS}

    def update(self, features, kind: str) -> None:
        if kind not in KINDS:
            raise GenforgeError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self._features[kind].append(as_features(features).float())

    def compute(self) -> dict[str, float]:
        empty = [kind for kind in KINDS if not self._features[kind]]
        if empty:
            raise GenforgeError(f"training distance needs train, held-out and fake features; none for {', '.join(empty)}")
        train, heldout, fake = (torch.cat(self._features[kind]) for kind in KINDS)
        heldout_distance = nearest_distance(heldout, train)
        fake_distance = nearest_distance(fake, train)
        close = torch.quantile(heldout_distance.double(), 0.01)
        return {"nn_ratio": float(fake_distance.median() / heldout_distance.median()),
                "copies": float((fake_distance < close).double().mean())}
