"""Conditional GAN: class-conditional batch norm in the generator, a projection
discriminator (Miyato & Koyama 2018) with spectral normalisation, hinge loss."""

from __future__ import annotations

from dataclasses import dataclass

from .gan import GAN, GANConfig
from .gan_networks import Discriminator, Generator


@dataclass
class CGANConfig(GANConfig):
    loss: str = "hinge"
    lr: float = 2e-4
    lr_d: float | None = 4e-4  # TTUR, as in sngan


class CGAN(GAN):
    name = "cgan"
    Config = CGANConfig
    is_conditional = True

    def make_generator(self, config):
        return Generator(config.latent_dim, config.g_width, config.image_shape, config.num_classes)

    def make_discriminator(self, config):
        return Discriminator(config.d_width, config.image_shape, spectral=True, num_classes=config.num_classes)
