"""Conditional GAN: class-conditional batch norm in the generator, a projection
discriminator (Miyato & Koyama 2018) with spectral normalisation, hinge loss."""

from __future__ import annotations

from dataclasses import dataclass

from .gan import GAN, GANConfig
from .gan_networks import Discriminator, Generator


@dataclass
class CGANConfig(GANConfig):
    loss: str = "hinge"
    # 16x the usual rates (TTUR, as in sngan): measured by bench/sweep.py on both data sets,
    # 32x gained ~10% more FID but sits nearer the edge of divergence.
    lr: float = 3.2e-3
    lr_d: float | None = 6.4e-3


class CGAN(GAN):
    name = "cgan"
    Config = CGANConfig
    is_conditional = True

    def make_generator(self, config):
        return Generator(config.latent_dim, config.g_width, config.image_shape, config.num_classes)

    def make_discriminator(self, config):
        return Discriminator(config.d_width, config.image_shape, spectral=True, num_classes=config.num_classes)
