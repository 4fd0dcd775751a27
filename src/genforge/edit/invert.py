"""Getting real images into latent space, and back out.

Autoencoders have an encoder: the posterior mean (or a draw from the posterior) is the code.
GANs have none: the code is found by optimisation (`fit.fit_latents`), with a pixel loss and
the data set's feature network for a loss that cares what the digit is, not only where ink is;
a learned inversion encoder (`encoder.py`, the hybrid) gives the search its first start.
An autoencoder's code can be refined the same way, starting from the encoder's guess.

Every edit takes and returns CPU tensors and runs where the model is (a GPU, say): moving
in and out happens here, in `fit_latents` and in `realism`, so no caller has to.
"""

from __future__ import annotations

import torch

from ..errors import GenforgeError
from ..metrics.feature_net import FeatureNet
from ..metrics.reconstruction import ReconstructionError
from ..models import GenerativeModel
from .classify import class_reads
from .encoder import InversionEncoder, guess_codes
from .fit import FitConfig, fit_latents

BATCH = 500


def encode(model: GenerativeModel, x: torch.Tensor, labels: torch.Tensor | None = None,
           sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
    """The encoder's codes (N, latent_dim): posterior means, or one posterior draw each with `sample`."""
    if not model.is_autoencoder:
        raise GenforgeError(f"model {model.name!r} has no encoder; invert it by optimisation instead")
    codes = []
    with torch.inference_mode():
        for i in range(0, len(x), BATCH):
            mu, logvar = model.encode(x[i:i + BATCH].to(model.device), _chunk(labels, i, model.device))
            mu, logvar = mu.cpu(), logvar.cpu()
            if sample:
                mu = mu + torch.randn(mu.shape, generator=generator) * torch.exp(0.5 * logvar)
            codes.append(mu)
    return torch.cat(codes)


def _chunk(labels: torch.Tensor | None, i: int, device: torch.device) -> torch.Tensor | None:
    return None if labels is None else labels[i:i + BATCH].to(device)


def invert(model: GenerativeModel, x: torch.Tensor, labels: torch.Tensor | None = None,
           feature_net: FeatureNet | None = None, fit: FitConfig | None = None, refine: bool = False,
           progress: bool = False, encoder: InversionEncoder | None = None) -> torch.Tensor:
    """Codes (N, latent_dim) whose images reproduce x: the encoder for an autoencoder (refined by
    optimisation with `refine`), optimisation for any other model (its first start the guess of
    an inversion `encoder` when given)."""
    if model.is_autoencoder and not refine:
        return encode(model, x, labels)
    if model.is_autoencoder:
        init = encode(model, x, labels)
    else:
        init = None if encoder is None else guess_codes(encoder, x.to(model.device)).cpu()
    return fit_latents(model, x, labels, init=init, feature_net=feature_net, config=fit or FitConfig(),
                       progress=progress).z


def generate(model: GenerativeModel, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Images in [0, 1] (on the CPU) for codes z, in batches and without gradients."""
    with torch.inference_mode():
        return torch.cat([model.generate(z[i:i + BATCH].to(model.device), _chunk(labels, i, model.device)).cpu()
                          for i in range(0, len(z), BATCH)])


def reconstruction_quality(x: torch.Tensor, reconstruction: torch.Tensor,
                           feature_net: FeatureNet | None = None) -> dict[str, float]:
    """MSE, PSNR, SSIM, and (with a classifier) how often it reads the same class in both."""
    metric = ReconstructionError()
    metric.update(x, reconstruction.clamp(0, 1))
    quality = metric.compute()
    if feature_net is not None:
        quality["agreement"] = float((class_reads(feature_net, x) == class_reads(feature_net, reconstruction))
                                     .float().mean())
    return quality
