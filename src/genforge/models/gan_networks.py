"""The convolutional generator and discriminator the GAN families share, sized for 28x28x1,
32x32x3 and 64x64x3 images on a CPU (shape from the config). Each family picks its normalisation; a class count > 0 makes
them conditional (the generator by class-conditional batch norm, the discriminator by
projection)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .blocks import channel_ladder, upsampling_plan


class ConditionalBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose scale and shift are looked up per class (de Vries et al. 2017)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__(channels, affine=False)
        self.gain = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.gain(labels)[:, :, None, None] + self.shift(labels)[:, :, None, None]


class Generator(nn.Module):
    """z -> linear -> (start x start) maps -> 2x transposed-conv up-samplings -> tanh image."""

    def __init__(self, latent_dim: int, width: int, image_shape: tuple[int, int, int], num_classes: int = 0):
        super().__init__()
        c, size, _ = image_shape
        self.start, n = upsampling_plan(size)
        chans = channel_ladder(width, n)
        self.top = chans[0]
        self.conditional = num_classes > 0
        self.project = nn.Linear(latent_dim, self.top * self.start ** 2, bias=False)
        self.norms = nn.ModuleList(
            ConditionalBatchNorm2d(ch, num_classes) if self.conditional else nn.BatchNorm2d(ch) for ch in chans)
        self.ups = nn.ModuleList(nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False) for a, b in zip(chans, chans[1:]))
        self.to_image = nn.ConvTranspose2d(chans[-1], c, 4, 2, 1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.project(z).view(-1, self.top, self.start, self.start)
        h = self._norm_relu(0, h, labels)
        for i, up in enumerate(self.ups, start=1):
            h = self._norm_relu(i, up(h), labels)
        return torch.tanh(self.to_image(h))

    def _norm_relu(self, i: int, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = self.norms[i](h, labels) if self.conditional else self.norms[i](h)
        return F.relu(h)


class Discriminator(nn.Module):
    """Strided convolutions down to start x start, then a linear logit.

    Never batch norm: the gradient penalty and spectral normalisation both assume each
    image's logit depends on that image alone. `layer_norm` normalises each image's maps
    (GroupNorm with one group); with `num_classes`, the logit gains the projection term
    <embed(y), features> (Miyato & Koyama 2018). `minibatch_std` G > 0 appends, to each image's
    features, their spread over a group of G images of the batch (Karras et al. 2018): a
    generator whose samples all look alike is then told apart by the group, not the image. The
    price is that a logit then depends on the image's batch-mates too.
    """

    def __init__(self, width: int, image_shape: tuple[int, int, int], *, layer_norm: bool = False,
                 spectral: bool = False, num_classes: int = 0, minibatch_std: int = 0):
        super().__init__()
        self.minibatch_std = minibatch_std
        c, size, _ = image_shape
        start, n = upsampling_plan(size)
        chans = [c] + channel_ladder(width, n)[::-1]
        wrap = spectral_norm if spectral else (lambda m: m)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(chans, chans[1:])):
            layers.append(wrap(nn.Conv2d(a, b, 4, 2, 1)))
            if layer_norm and i > 0:  # not on the first layer, as DCGAN leaves its first layer bare
                layers.append(nn.GroupNorm(1, b))
            layers.append(nn.LeakyReLU(0.2))
        self.features = nn.Sequential(*layers, nn.Flatten())
        n_features = chans[-1] * start * start + (1 if minibatch_std else 0)
        self.logit = wrap(nn.Linear(n_features, 1))
        self.class_embedding = wrap(nn.Embedding(num_classes, n_features)) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        if self.minibatch_std:
            h = torch.cat([h, group_spread(h, self.minibatch_std)], 1)
        logit = self.logit(h).squeeze(1)
        if self.class_embedding is not None:
            logit = logit + (self.class_embedding(labels) * h).sum(1)
        return logit


def group_spread(h: torch.Tensor, group: int) -> torch.Tensor:
    """(N, 1): for each image, the standard deviation of the features (N, F) over its group of
    images i, i + N/G, i + 2N/G, ..., averaged over features. G shrinks until it divides N."""
    n = len(h)
    group = min(group, n)
    while n % group:
        group -= 1
    members = h.view(group, n // group, -1)
    # Written out rather than Tensor.var, whose backward over the leading dim is 5x slower on CPU.
    spread = (members - members.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=1)
    return spread.repeat(group).unsqueeze(1)
