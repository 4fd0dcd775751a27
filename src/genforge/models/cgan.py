"""Conditional GAN: class-conditional batch norm in the generator, a projection
discriminator (Miyato & Koyama 2018) with spectral normalisation, hinge loss."""

from __future__ import annotations

from dataclasses import dataclass

from .gan import GAN, GANConfig
from .gan_networks import Discriminator, Generator


@dataclass
class CGANConfig(GANConfig):
    loss: str = "hinge"
    # 16x the usual rates (TTUR, as in sngan): measured by bench/trials/sweep.py on both data sets,
    # 32x gained ~10% more FID but sits nearer the edge of divergence.
    lr: float = 3.2e-3
    lr_d: float | None = 6.4e-3
    # No first-moment averaging (beta1 0) and a shorter second-moment memory (beta2 0.9), the
    # projection-discriminator paper's Adam: after 5 minutes FID 9.7 -> 7.8 on MNIST and
    # 21.7 -> 16.6 on Fashion-MNIST, recall up on both (bench/trials/sweep.py, BENCHMARKS.md). After 15
    # minutes the gain is a wash (3 seeds): MNIST FID 6.6 -> 6.5 but recall 0.79 -> 0.76;
    # Fashion-MNIST the reverse, FID 10.3 -> 11.6 and recall 0.63 -> 0.64.
    beta1: float = 0.0
    beta2: float = 0.9


class CGAN(GAN):
    name = "cgan"
    Config = CGANConfig
    is_conditional = True

    def make_generator(self, config):
        return Generator(config.latent_dim, config.g_width, config.image_shape, config.num_classes)

    def make_discriminator(self, config):
        return Discriminator(config.d_width, config.image_shape, spectral=True, num_classes=config.num_classes,
                             minibatch_std=config.minibatch_std)
