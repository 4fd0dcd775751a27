"""The two models everyone starts from, re-typed so genforge can be measured against them.

- `ref-vae`: the PyTorch examples' MLP VAE (784-400-20, BCE + KL, Adam 1e-3, batch 128).
- `ref-dcgan`: the TensorFlow DCGAN tutorial's networks and update (Adam 1e-4, batch 256,
  noise 100), translated layer for layer, Keras defaults included (BatchNorm momentum 0.99
  is PyTorch momentum 0.01 with eps 1e-3; LeakyReLU's default slope is 0.3; Glorot init).

They are baselines for benchmarks, not recommendations: `vae` and `dcgan` are the models
designed for this machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config_check import Whole
from .base import GenerativeModel, ModelConfig


@dataclass
class RefVAEConfig(ModelConfig):
    latent_dim: int = 20
    hidden: int = 400
    lr: float = 1e-3
    batch_size: int = 128

    RULES = {"hidden": Whole(min=1)}  # an MLP: any image size


class RefVAE(GenerativeModel):
    name = "ref-vae"
    Config = RefVAEConfig
    is_autoencoder = True

    def __init__(self, config: RefVAEConfig):
        super().__init__(config)
        d = config.image_shape[0] * config.image_shape[1] * config.image_shape[2]
        self.fc1 = nn.Linear(d, config.hidden)
        self.fc21 = nn.Linear(config.hidden, config.latent_dim)
        self.fc22 = nn.Linear(config.hidden, config.latent_dim)
        self.fc3 = nn.Linear(config.latent_dim, config.hidden)
        self.fc4 = nn.Linear(config.hidden, d)

    def encode(self, x, labels=None):
        h = F.relu(self.fc1(x.flatten(1)))
        return self.fc21(h), self.fc22(h)

    def decode_logits(self, z):
        return self.fc4(F.relu(self.fc3(z))).view(-1, *self.config.image_shape)

    def decode(self, z, labels=None):
        return torch.sigmoid(self.decode_logits(z))

    def log_likelihood(self, x, z):
        """log p(x | z) of each image under the Bernoulli decoder."""
        return -F.binary_cross_entropy_with_logits(self.decode_logits(z), x, reduction="none").flatten(1).sum(1)

    def loss(self, x, y=None):
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        recon = F.binary_cross_entropy(self.decode(z), x, reduction="sum") / len(x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / len(x)
        return {"loss": recon + kl, "recon": recon, "kl": kl}

    def generate(self, z, labels=None):
        return self.decode(z)


@dataclass
class RefDCGANConfig(ModelConfig):
    latent_dim: int = 100
    lr: float = 1e-4
    batch_size: int = 256

    def cross_check(self):
        if self.image_shape[1] % 4:  # the tutorial's two 2x up-samplings from size / 4
            raise self.refuse("image_shape", "(channels, size, size) with a size divisible by 4")


def _keras_bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-3, momentum=0.01)


class TFTutorialGenerator(nn.Module):
    def __init__(self, latent_dim: int, image_shape: tuple[int, int, int]):
        super().__init__()
        c, size, _ = image_shape
        s = size // 4
        self.net = nn.Sequential(
            nn.Linear(latent_dim, s * s * 256, bias=False),
            nn.BatchNorm1d(s * s * 256, eps=1e-3, momentum=0.01),
            nn.LeakyReLU(0.3),
            nn.Unflatten(1, (256, s, s)),
            nn.ConvTranspose2d(256, 128, 5, 1, 2, bias=False), _keras_bn(128), nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(128, 64, 5, 2, 2, output_padding=1, bias=False), _keras_bn(64), nn.LeakyReLU(0.3),
            nn.ConvTranspose2d(64, c, 5, 2, 2, output_padding=1, bias=False), nn.Tanh(),
        )

    def forward(self, z):
        return self.net(z)


class TFTutorialDiscriminator(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int]):
        super().__init__()
        c, size, _ = image_shape
        self.net = nn.Sequential(
            nn.Conv2d(c, 64, 5, 2, 2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
            nn.Conv2d(64, 128, 5, 2, 2), nn.LeakyReLU(0.3), nn.Dropout(0.3),
            nn.Flatten(), nn.Linear(128 * (size // 4) ** 2, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(1)


def glorot_init(module: nn.Module) -> None:
    """Keras' default initialisation: Glorot-uniform kernels, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class RefDCGAN(GenerativeModel):
    name = "ref-dcgan"
    Config = RefDCGANConfig
    has_discriminator = True

    def __init__(self, config: RefDCGANConfig):
        super().__init__(config)
        self.generator = TFTutorialGenerator(config.latent_dim, config.image_shape)
        self.discriminator = TFTutorialDiscriminator(config.image_shape)
        glorot_init(self)

    def configure_optimizers(self):
        # Keras Adam's epsilon is 1e-7.
        return {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=self.config.lr, eps=1e-7),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr, eps=1e-7),
        }

    def train_step(self, x, y, optimizers):
        return tutorial_step(self.generator, self.discriminator, x * 2 - 1, self.latent(len(x)),
                             optimizers["generator"], optimizers["discriminator"])

    def generate(self, z, labels=None):
        return (self.generator(z) + 1) / 2

    def discriminate(self, x, labels=None):
        return self.discriminator(x * 2 - 1)

    def first_layer_weight(self):
        return self.generator.net[0].weight


def tutorial_step(G, D, real, z, opt_g, opt_d):
    """The tutorial's update: one forward pass, both networks stepped from the same losses."""
    fake = G(z)
    real_out, fake_out = D(real), D(fake)
    gen_loss = F.binary_cross_entropy_with_logits(fake_out, torch.ones_like(fake_out))
    disc_loss = (F.binary_cross_entropy_with_logits(real_out, torch.ones_like(real_out))
                 + F.binary_cross_entropy_with_logits(fake_out, torch.zeros_like(fake_out)))
    g_params, d_params = list(G.parameters()), list(D.parameters())
    g_grads = torch.autograd.grad(gen_loss, g_params, retain_graph=True)
    d_grads = torch.autograd.grad(disc_loss, d_params)
    for p, g in zip(g_params + d_params, g_grads + d_grads):
        p.grad = g
    opt_g.step()
    opt_d.step()
    return {"loss_d": disc_loss.detach(), "loss_g": gen_loss.detach()}
