"""The two baselines the CNN detector is measured against.

- Spectral: the azimuthally averaged power spectrum (the 1-D profile in which up-sampling
  artefacts of generators show as bumps at high frequencies) plus a few pixel statistics,
  classified by logistic regression.
- The GAN's own discriminator: the critic was trained to tell exactly these images apart,
  so its realism score is the obvious detector for its own generator (and only for it).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ..api import Model
from ..errors import GenforgeError
from .detector import spectral_planes


def radial_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Log power averaged over rings of equal frequency, per spectral plane: (N, H // 2 + 1) for grey
    images, (N, 3 * (H // 2 + 1)) for colour ones, whose planes are luminance and two chroma
    differences (`detector.spectral_planes` says why those and not R, G, B)."""
    planes = spectral_planes(x) if x.shape[1] == 3 else x.mean(1, keepdim=True)
    power = torch.fft.fftshift(torch.fft.fft2(planes - planes.mean(dim=(-2, -1), keepdim=True),
                                              norm="ortho").abs() ** 2, dim=(-2, -1))
    h, w = planes.shape[-2:]
    dy = torch.arange(h).view(-1, 1) - h // 2
    dx = torch.arange(w).view(1, -1) - w // 2
    ring = torch.sqrt((dy ** 2 + dx ** 2).float()).round().long().clamp(max=min(h, w) // 2).flatten()
    rings = ring.max().item() + 1
    sums = torch.zeros(*planes.shape[:2], rings).index_add_(2, ring, power.flatten(2))
    return torch.log(sums / torch.bincount(ring, minlength=rings) + 1e-8).flatten(1)


def pixel_statistics(x: torch.Tensor) -> torch.Tensor:
    """Mean, spread, share of pure black / white / in-between pixels, and gradient energy (N, 6),
    over all channels' values together."""
    flat = x.flatten(1)
    gradient = (x[..., 1:, :] - x[..., :-1, :]).abs().flatten(1).mean(1) + \
               (x[..., :, 1:] - x[..., :, :-1]).abs().flatten(1).mean(1)
    black, white = (flat <= 1 / 255).float().mean(1), (flat >= 254 / 255).float().mean(1)
    return torch.stack([flat.mean(1), flat.std(1), black, white, 1 - black - white, gradient], 1)


def spectral_features(x: torch.Tensor) -> np.ndarray:
    return torch.cat([radial_spectrum(x), pixel_statistics(x)], 1).double().numpy()


class SpectralBaseline:
    """Logistic regression on `spectral_features`; score() is the probability of "fake"."""

    def __init__(self, C: float = 1.0):
        self.pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000))

    def fit(self, real: torch.Tensor, fake: torch.Tensor) -> "SpectralBaseline":
        features = np.concatenate([spectral_features(real), spectral_features(fake)])
        labels = np.r_[np.zeros(len(real)), np.ones(len(fake))]
        self.pipeline.fit(features, labels)
        return self

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.pipeline.predict_proba(spectral_features(x))[:, 1])


def discriminator_score(model: Model, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """"Fakeness" by the GAN's critic: minus its realism logit. A conditional critic, shown an
    image of unknown class, is asked about every class and believed for the most plausible one."""
    module = model.module
    if not module.has_discriminator:
        raise GenforgeError(f"model {model.name!r} has no discriminator to score images with")
    scores = []
    with torch.inference_mode():
        for chunk in x.split(batch_size):
            chunk = chunk.to(model.device)
            if module.is_conditional:
                realism = torch.stack([module.discriminate(chunk, torch.full((len(chunk),), k, device=model.device))
                                       for k in range(module.config.num_classes)]).amax(0)
            else:
                realism = module.discriminate(chunk)
            scores.append(-realism.cpu())
    return torch.cat(scores)
