"""Convolutional VAE (Kingma & Welling 2014): Gaussian encoder; a Bernoulli, Gaussian (fixed or
learned scale) or discretised-logistic decoder (likelihoods.py). Builds for any image shape the
ladder reaches (28x28x1, 32x32x3, 64x64x3, ...): channels and size come from `image_shape`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config_check import Number, OneOf, Whole
from .base import GenerativeModel, ModelConfig
from .blocks import channel_ladder, down_block, up_block, upsampling_plan
from .likelihoods import LEARNED_SCALE, LIKELIHOODS, initial_log_scale, log_likelihood


@dataclass
class VAEConfig(ModelConfig):
    latent_dim: int = 16
    width: int = 32
    lr: float = 1e-3
    batch_size: int = 128
    # "bernoulli" suits the grey data sets; for colour, "gaussian-learned" or
    # "discretised-logistic" (likelihoods.py says why).
    likelihood: str = "bernoulli"
    gaussian_std: float = 0.1  # decoder std of "gaussian"; the starting std of the learned likelihoods
    beta: float = 1.0  # weight of the KL term; 1 is the ELBO (see beta_vae.py for the trade-off)

    RULES = {"width": Whole(min=1), "likelihood": OneOf(*LIKELIHOODS),
             "gaussian_std": Number(gt=0), "beta": Number(ge=0)}

    def cross_check(self):
        self.check_image_size()


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """A sample of N(mu, exp(logvar)) that gradients flow through."""
    return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z | x) || N(0, I)) summed over latent dimensions, mean over the batch (nats per image)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum() / len(mu)


class VAE(GenerativeModel):
    name = "vae"
    Config = VAEConfig
    is_autoencoder = True

    def __init__(self, config: VAEConfig):
        super().__init__(config)
        c, size, _ = config.image_shape
        start, n = upsampling_plan(size)
        chans = channel_ladder(config.width, n)  # low-res end first
        self.start, self.top = start, chans[0]
        extra = self.condition_size()

        downs = [c + extra] + chans[::-1]
        self.encoder = nn.Sequential(*[down_block(a, b) for a, b in zip(downs, downs[1:])], nn.Flatten())
        self.to_stats = nn.Linear(self.top * start * start, 2 * config.latent_dim)

        self.from_latent = nn.Linear(config.latent_dim + extra, self.top * start * start)
        ups = [up_block(a, b, batch_norm=False) for a, b in zip(chans, chans[1:])]
        self.decoder = nn.Sequential(*ups, nn.ConvTranspose2d(chans[-1], c, 4, 2, 1))
        # One learned log-scale per channel, only for the likelihoods that learn it (so the
        # Bernoulli and fixed-Gaussian models keep their parameters and checkpoints).
        self.log_scale = (nn.Parameter(torch.full((c,), initial_log_scale(config.likelihood, config.gaussian_std)))
                          if config.likelihood in LEARNED_SCALE else None)

    def condition_size(self) -> int:
        """Extra encoder input channels and decoder input features a conditional subclass feeds in."""
        return 0

    def encode(self, x: torch.Tensor, labels=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x) for images in [0, 1]."""
        mu, logvar = self.to_stats(self.encoder(x)).chunk(2, dim=1)
        return mu, logvar

    def decode_logits(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        h = F.relu(self.from_latent(z)).view(-1, self.top, self.start, self.start)
        return self.decoder(h)

    def decode(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        """Mean image of p(x | z), in [0, 1]."""
        return torch.sigmoid(self.decode_logits(z, labels))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor, labels=None) -> torch.Tensor:
        """log p(x | z) of each image, in nats (the decoder's likelihood)."""
        return self.likelihood_of_logits(x, self.decode_logits(z, labels))

    def likelihood_of_logits(self, x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """log p(x | z) of each image, given the decoder's logits for z."""
        return log_likelihood(self.config.likelihood, x, logits, gaussian_std=self.config.gaussian_std,
                              log_scale=self.log_scale)

    def elbo_terms(self, x: torch.Tensor, labels=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction loss and KL of a batch, both in nats per image (the unit the VAE
        literature reports): sums over pixels and latent dimensions, mean over the batch."""
        mu, logvar = self.encode(x, labels)
        recon = -self.log_likelihood(x, reparameterize(mu, logvar), labels).mean()
        return recon, kl_to_standard_normal(mu, logvar)

    def loss(self, x, y=None):
        recon, kl = self.elbo_terms(x, y)
        return {"loss": recon + self.config.beta * kl, "recon": recon, "kl": kl}

    def generate(self, z, labels=None):
        return self.decode(z, labels)
