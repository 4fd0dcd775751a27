"""DCGAN (Radford et al. 2016) sized for 28x28x1, 32x32x3 and 64x64x3 images on a CPU (shape from the config), non-saturating loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config_check import Number, Whole
from .base import GenerativeModel, ModelConfig
from .blocks import channel_ladder, down_block, up_block, upsampling_plan


@dataclass
class DCGANConfig(ModelConfig):
    latent_dim: int = 64
    g_width: int = 64
    d_width: int = 64
    lr: float = 2e-4
    beta1: float = 0.5  # DCGAN paper: 0.9 makes training oscillate
    batch_size: int = 128

    RULES = {"g_width": Whole(min=1), "d_width": Whole(min=1), "beta1": Number(ge=0, lt=1)}

    def cross_check(self):
        self.check_image_size()


class Generator(nn.Module):
    def __init__(self, latent_dim: int, width: int, image_shape: tuple[int, int, int]):
        super().__init__()
        c, size, _ = image_shape
        self.start, n = upsampling_plan(size)
        chans = channel_ladder(width, n)
        self.top = chans[0]
        self.project = nn.Sequential(
            nn.Linear(latent_dim, self.top * self.start ** 2, bias=False),
            nn.Unflatten(1, (self.top, self.start, self.start)),
            nn.BatchNorm2d(self.top),
            nn.ReLU(inplace=True),
        )
        ups = [up_block(a, b) for a, b in zip(chans, chans[1:])]
        self.body = nn.Sequential(*ups, nn.ConvTranspose2d(chans[-1], c, 4, 2, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.project(z))


class Discriminator(nn.Module):
    def __init__(self, width: int, image_shape: tuple[int, int, int]):
        super().__init__()
        c, size, _ = image_shape
        start, n = upsampling_plan(size)
        chans = [c] + channel_ladder(width, n)[::-1]
        # No batch norm on the first layer (DCGAN paper); batch norm after that.
        blocks = [down_block(a, b, batch_norm=i > 0) for i, (a, b) in enumerate(zip(chans, chans[1:]))]
        self.body = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(chans[-1] * start * start, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).squeeze(1)


class DCGAN(GenerativeModel):
    name = "dcgan"
    Config = DCGANConfig
    has_discriminator = True

    def __init__(self, config: DCGANConfig):
        super().__init__(config)
        self.generator = Generator(config.latent_dim, config.g_width, config.image_shape)
        self.discriminator = Discriminator(config.d_width, config.image_shape)

    def configure_optimizers(self):
        betas = (self.config.beta1, 0.999)
        return {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=self.config.lr, betas=betas),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr, betas=betas),
        }

    def train_step(self, x, y, optimizers):
        return gan_step(self.generator, self.discriminator, x * 2 - 1,
                        self.latent(len(x)), optimizers["generator"], optimizers["discriminator"])

    def generate(self, z, labels=None):
        return (self.generator(z) + 1) / 2

    def discriminate(self, x, labels=None):
        return self.discriminator(x * 2 - 1)

    def first_layer_weight(self):
        return self.generator.project[0].weight


def gan_step(G: nn.Module, D: nn.Module, real: torch.Tensor, z: torch.Tensor,
             opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """One discriminator and one generator update with the non-saturating loss.

    `real` is in the generator's output range ([-1, 1]). The fake batch is generated once
    and reused for both updates, as the PyTorch DCGAN example does.
    """
    fake = G(z)
    d_real, d_fake = D(real), D(fake.detach())
    # softplus(-t) = -log sigmoid(t): the logistic loss without the unstable log.
    loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    D.requires_grad_(False)  # the generator step needs no gradients for D's weights
    loss_g = F.softplus(-D(fake)).mean()
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    D.requires_grad_(True)
    return {
        "loss_d": loss_d.detach(),
        "loss_g": loss_g.detach(),
        "d_real": torch.sigmoid(d_real).mean().detach(),
        "d_fake": torch.sigmoid(d_fake).mean().detach(),
    }
