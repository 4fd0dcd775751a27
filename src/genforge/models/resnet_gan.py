"""ResNet GAN (`resgan`, and `resgan-cond` for the class-conditional form): the SNGAN / BigGAN
ResNet layout (Miyato et al. 2018; Brock et al. 2019) for 32x32 and 64x64 colour images.

Generator: z -> linear -> width x 4 x 4 maps (7 x 7 for 28x28 images) -> one residual
up-sampling block per doubling (BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, plus a 1x1-conv
shortcut that is up-sampled too) -> BN-ReLU-conv3x3-tanh. The conditional form makes every
block's batch norm class-conditional (a gain and a shift per class).

Discriminator: residual down-sampling blocks with spectral normalisation on every conv, linear
and class embedding. The first block is SNGAN's "optimised" one (conv-ReLU-conv-avgpool, its
shortcut avgpool-conv1x1: no activation before the first conv, which would throw away the
image's negative half); then ReLU-conv-ReLU-conv-avgpool blocks halve the maps down to 8x8 (7x7
for 28x28), and two blocks without down-sampling follow, as in SNGAN's CIFAR-10 network. Then
ReLU, a sum over positions (global sum pooling) and a linear logit; the conditional form adds the
projection term <embed(y), features> (Miyato & Koyama 2018).

Every block keeps one width, `g_width` in G and `d_width` in D, at every resolution, as SNGAN's
CIFAR-10 networks do. The defaults (64 and 64) are sized for minutes on 2 CPU cores at 32x32
(measured: 42 training images per CPU-second on emoji; at 64x64 only 9, where widths of 32 are
the more sensible start on a CPU; docs/models/resgan.md); the published CIFAR-10 sizes are one change away: `--set g_width=256 --set d_width=128` (with
`latent_dim` 128, the default here; SNGAN's own training adds `--set lr=2e-4 --set lr_d=2e-4
--set n_critic=5`). At 64x64 the same layout gains one block in each network.

Training is the shared GAN recipe (models/gan.py): the hinge loss, two time-scale learning rates
with Adam (0, 0.9), an exponential moving average of G (batch-norm statistics included) for
sampling, and DiffAugment on by default (colour, translation, cutout): small colour data sets
such as emoji (about 6.8k training images) are where DiffAugment roughly halved the FID of
BigGAN on CIFAR-10 subsets (Zhao et al. 2020). `--set diffaug=` turns it off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .blocks import upsampling_plan
from .gan import GAN, GANConfig
from .gan_networks import ConditionalBatchNorm2d, group_spread


@dataclass
class ResGANConfig(GANConfig):
    """The fields of `resgan` and `resgan-cond`: the GAN recipe's, with defaults for colour images
    in minutes on a CPU (DiffAugment on, widths 32); `--set g_width=256 --set d_width=128` gives
    SNGAN's CIFAR-10 widths."""

    image_shape: tuple[int, int, int] = (3, 32, 32)
    latent_dim: int = 128  # SNGAN's and BigGAN's
    # Widths 32 and BigGAN-DiffAugment's Adam (2e-4 for both networks, betas (0, 0.999)), measured
    # on emoji at 32x32, one thread each (bench/trials/resgan_defaults.md): widths 64 with lr 1e-3 /
    # lr_d 4e-3 (the earlier defaults, from a 40-step test) left the discriminator dead after 15
    # minutes (hinge loss stuck at 2.0, FID 297 at 10k samples, 37 img/s); widths 32 run 103 img/s,
    # and in 4 minutes 2e-4 / 2e-4 reached FID 238 against 257 for TTUR's 1e-4 / 4e-4 (2k samples).
    g_width: int = 32
    d_width: int = 32
    loss: str = "hinge"
    lr: float = 2e-4
    lr_d: float | None = 2e-4
    beta1: float = 0.0
    beta2: float = 0.999
    diffaug: str = "color,translation,cutout"
    batch_size: int = 64


def _init(module: nn.Module, gain: float = 1.0) -> nn.Module:
    """Xavier-uniform weights, zero biases (SNGAN's initialisation: gain sqrt(2) in the residual
    branches, 1 on shortcuts and linear layers)."""
    nn.init.xavier_uniform_(module.weight, gain)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)
    return module


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


class UpBlock(nn.Module):
    """Residual 2x up-sampling: BN-ReLU-upsample-conv3x3-BN-ReLU-conv3x3, shortcut conv1x1 then
    upsample (for nearest up-sampling the same as the other order, at a quarter of the cost).
    With `num_classes` the two batch norms are class-conditional."""

    def __init__(self, c_in: int, c_out: int, num_classes: int = 0):
        super().__init__()
        self.conditional = num_classes > 0
        norm = (lambda c: ConditionalBatchNorm2d(c, num_classes)) if self.conditional else nn.BatchNorm2d
        self.norm1, self.norm2 = norm(c_in), norm(c_out)
        self.conv1 = _init(nn.Conv2d(c_in, c_out, 3, 1, 1), math.sqrt(2))
        self.conv2 = _init(nn.Conv2d(c_out, c_out, 3, 1, 1), math.sqrt(2))
        self.shortcut = _init(nn.Conv2d(c_in, c_out, 1))

    def _norm(self, norm: nn.Module, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return norm(h, labels) if self.conditional else norm(h)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(_up(F.relu(self._norm(self.norm1, x, labels))))
        h = self.conv2(F.relu(self._norm(self.norm2, h, labels)))
        return h + _up(self.shortcut(x))


class DownBlock(nn.Module):
    """Residual block of the discriminator, spectrally normalised, optionally halving the maps.

    `first`: SNGAN's optimised first block, conv-ReLU-conv-avgpool with an avgpool-conv1x1
    shortcut. Otherwise ReLU-conv-ReLU-conv(-avgpool), with a conv1x1(-avgpool) shortcut where
    the shape changes and the identity where it does not."""

    def __init__(self, c_in: int, c_out: int, down: bool, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = spectral_norm(_init(nn.Conv2d(c_in, c_out, 3, 1, 1), math.sqrt(2)))
        self.conv2 = spectral_norm(_init(nn.Conv2d(c_out, c_out, 3, 1, 1), math.sqrt(2)))
        learned = first or down or c_in != c_out
        self.shortcut = spectral_norm(_init(nn.Conv2d(c_in, c_out, 1))) if learned else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self.conv2(F.relu(h))
        if self.down:
            h = F.avg_pool2d(h, 2)
        if self.shortcut is None:
            return h + x
        if self.first:  # pool first: the 1x1 conv then works on a quarter of the pixels
            return h + self.shortcut(F.avg_pool2d(x, 2))
        s = self.shortcut(x)
        return h + (F.avg_pool2d(s, 2) if self.down else s)


class ResGenerator(nn.Module):
    """z -> linear -> residual up-sampling blocks -> BN-ReLU-conv3x3-tanh image."""

    def __init__(self, latent_dim: int, width: int, image_shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__()
        c, size, _ = image_shape
        self.start, n = upsampling_plan(size)
        self.width = width
        self.project = _init(nn.Linear(latent_dim, width * self.start ** 2))
        self.blocks = nn.ModuleList(UpBlock(width, width, num_classes) for _ in range(n))
        self.norm = nn.BatchNorm2d(width)
        self.to_image = _init(nn.Conv2d(width, c, 3, 1, 1))

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(z).view(-1, self.width, self.start, self.start)
        for block in self.blocks:
            h = block(h, labels)
        return torch.tanh(self.to_image(F.relu(self.norm(h))))


class ResDiscriminator(nn.Module):
    """Residual down-sampling blocks to 8x8 (7x7 for 28x28), two more at that size, ReLU, global
    sum pooling, a linear logit, and with `num_classes` the projection term. Spectral norm on
    every weight; never batch norm (each image's logit depends on that image alone, unless
    `minibatch_std` > 0 appends the spread of the pooled features over a group of images)."""

    def __init__(self, width: int, image_shape: tuple[int, int, int], num_classes: int = 0, minibatch_std: int = 0):
        super().__init__()
        c, size, _ = image_shape
        blocks = [DownBlock(c, width, down=True, first=True)]
        size //= 2
        while size > 8:
            blocks.append(DownBlock(width, width, down=True))
            size //= 2
        blocks += [DownBlock(width, width, down=False) for _ in range(2)]
        self.blocks = nn.Sequential(*blocks)
        self.minibatch_std = minibatch_std
        n_features = width + (1 if minibatch_std else 0)
        self.logit = spectral_norm(_init(nn.Linear(n_features, 1)))
        self.class_embedding = None
        if num_classes:
            self.class_embedding = spectral_norm(_init(nn.Embedding(num_classes, n_features)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, width) pooled features that the logit and the projection read."""
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))
        if self.minibatch_std:
            h = torch.cat([h, group_spread(h, self.minibatch_std)], 1)
        return h

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        logit = self.logit(h).squeeze(1)
        if self.class_embedding is not None:
            logit = logit + (self.class_embedding(labels) * h).sum(1)
        return logit


class ResGAN(GAN):
    name = "resgan"
    Config = ResGANConfig

    def make_generator(self, config):
        return ResGenerator(config.latent_dim, config.g_width, config.image_shape,
                            config.num_classes if self.is_conditional else 0)

    def make_discriminator(self, config):
        return ResDiscriminator(config.d_width, config.image_shape,
                                config.num_classes if self.is_conditional else 0, config.minibatch_std)


@dataclass
class ResGANCondConfig(ResGANConfig):
    """The same fields as resgan's; `num_classes` (at least the data's) sizes the class tables."""


class ResGANCond(ResGAN):
    """resgan with class-conditional batch norm in G and a projection discriminator."""

    name = "resgan-cond"
    Config = ResGANCondConfig
    is_conditional = True
