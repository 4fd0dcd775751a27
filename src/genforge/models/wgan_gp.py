"""WGAN-GP (Gulrajani et al. 2017): a Wasserstein critic kept 1-Lipschitz by a gradient penalty."""

from __future__ import annotations

from dataclasses import dataclass

from .gan import GAN, GANConfig
from .gan_networks import Discriminator, Generator


@dataclass
class WGANGPConfig(GANConfig):
    loss: str = "wasserstein"
    gp_weight: float = 10.0  # the paper's lambda
    beta1: float = 0.5  # the paper uses (0, 0.9) for ResNets and (0.5, 0.9) for DCGAN-like nets
    beta2: float = 0.9
    # The paper takes 5 critic steps per generator step. On a 2-core CPU the penalty's double
    # backward makes each critic step ~4x dearer than a generator step, so 5 of them leave
    # few generator updates in a budget of minutes. One step with a faster critic (TTUR,
    # Heusel et al. 2017, who train WGAN-GP this way) learned several times faster here.
    # Twice those rates learned faster still; 8x, which helps the spectrally normalised
    # families, made the critic overshoot (bench/trials/sweep.py).
    n_critic: int = 1
    lr: float = 4e-4
    lr_d: float | None = 8e-4


class WGANGP(GAN):
    name = "wgan-gp"
    Config = WGANGPConfig

    def make_generator(self, config):
        return Generator(config.latent_dim, config.g_width, config.image_shape)

    def make_discriminator(self, config):
        # No batch norm: the penalty is on each image's own gradient. Layer norm is the
        # paper's drop-in replacement.
        return Discriminator(config.d_width, config.image_shape, layer_norm=True, minibatch_std=config.minibatch_std)
