"""SNGAN (Miyato et al. 2018): spectral normalisation on every discriminator layer, hinge loss."""

from __future__ import annotations

from dataclasses import dataclass

from .gan import GAN, GANConfig
from .gan_networks import Discriminator, Generator


@dataclass
class SNGANConfig(GANConfig):
    loss: str = "hinge"
    # TTUR (Heusel et al. 2017): a faster discriminator instead of several of its steps per
    # generator step. The paper's (1e-4, 4e-4, betas (0, 0.9)) learned ~3x slower in short
    # CPU runs than DCGAN's betas. Raising these rates lifted cgan up to 16x (bench/sweep.py);
    # for sngan 16x was no better than 8x.
    lr: float = 1.6e-3
    lr_d: float | None = 3.2e-3


class SNGAN(GAN):
    name = "sngan"
    Config = SNGANConfig

    def make_generator(self, config):
        return Generator(config.latent_dim, config.g_width, config.image_shape)

    def make_discriminator(self, config):
        return Discriminator(config.d_width, config.image_shape, spectral=True)
