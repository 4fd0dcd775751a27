"""The metric interface, and the input checks every metric shares.

A metric never runs a network. An evaluation pipeline computes features (or class
probabilities) once and feeds the same tensors to every metric, so FID, KID and
precision/recall see exactly the same embedding and the expensive pass runs once.

Everything a metric keeps lives on the CPU: features are small next to the images they
came from, and float64 (which FID needs) is not available on every accelerator.
"""

from __future__ import annotations

import torch

from ..errors import GenforgeError


class Metric:
    """Accumulate with `update()`, read with `compute()`, start over with `reset()`."""

    def __init__(self):
        self.reset()

    def update(self, *args, **kwargs) -> None:
        """Adds a batch (features, probabilities or images, as the metric takes them)."""
        raise NotImplementedError

    def compute(self) -> dict[str, float] | float:
        """The metric over everything added since the last reset."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forgets everything added."""
        raise NotImplementedError


def as_features(x, name: str = "features") -> torch.Tensor:
    """A (N, D) float CPU tensor, or a one-line error saying what was wrong."""
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim != 2:
        raise GenforgeError(f"{name} must be a (N, D) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    if not torch.isfinite(x).all():
        raise GenforgeError(f"{name} contain NaN or infinite values")
    return x


class RealFake:
    """Features of the real and the fake side, kept until compute() (float32)."""

    def __init__(self):
        self.parts: dict[bool, list[torch.Tensor]] = {True: [], False: []}
        self.dim: int | None = None

    def add(self, features, real: bool) -> None:
        x = as_features(features)
        if self.dim is None:
            self.dim = x.shape[1]
        elif x.shape[1] != self.dim:
            raise GenforgeError(f"features have {x.shape[1]} dimensions, earlier ones had {self.dim}")
        self.parts[bool(real)].append(x.float())

    def count(self, real: bool) -> int:
        return sum(len(p) for p in self.parts[bool(real)])

    def get(self, real: bool) -> torch.Tensor:
        parts = self.parts[bool(real)]
        if len(parts) > 1:  # concatenate once, so a second compute() is free
            parts[:] = [torch.cat(parts)]
        return parts[0] if parts else torch.empty(0, self.dim or 0)


class TwoSetMetric(Metric):
    """A metric that keeps every real and fake feature vector until compute() (KID, k-NN metrics)."""

    def reset(self) -> None:
        self._features = RealFake()

    def update(self, features, real: bool) -> None:
        self._features.add(features, real)
