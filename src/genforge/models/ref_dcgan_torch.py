"""`ref-dcgan-torch`: the PyTorch examples' DCGAN (pytorch/examples, `dcgan/main.py`), re-typed
as the colour reference that genforge's families race against.

Kept layer for layer from the example (nz = 100, ngf = ndf = 64 by default: `latent_dim`,
`g_width`, `d_width`):

- G: z as a 1x1 map -> ConvTranspose 4x4 stride 1 to ngf*8 maps of 4x4, then ConvTranspose 4x4
  stride 2 (padding 1) to ngf*4 (8x8), ngf*2 (16x16), ngf (32x32), each followed by BatchNorm and
  ReLU, then a last ConvTranspose 4x4 stride 2 to the image's channels (64x64) and Tanh. No biases
  in the convolutions.
- D: Conv 4x4 stride 2 (padding 1) from the image's channels to ndf (32x32) with LeakyReLU(0.2)
  and no BatchNorm, then to ndf*2, ndf*4, ndf*8 (16, 8, 4) each with BatchNorm and LeakyReLU(0.2),
  then a Conv 4x4 stride 1 to one value. No biases.
- Weights N(0, 0.02) for every convolution; BatchNorm weights N(1, 0.02), biases 0.
- Adam lr 2e-4, betas (0.5, 0.999) for both networks, batch 64.
- One D step on a real batch (label 1) and a fake batch (label 0), then one G step on the same
  fakes with the non-saturating loss (BCE against label 1).

What differs, and why it changes nothing: D's final Sigmoid + BCELoss is folded into
BCE-with-logits (the same loss, computed stably), because genforge's `discriminate()` returns
logits; the images cross genforge's interface in [0, 1] and are mapped to the example's [-1, 1]
inside, as the example's Normalize(0.5, 0.5) does.

The example is 64x64 only. At 32x32 this reference drops the first stage of each ladder (G
starts at 4x4 with ngf*4 maps, D ends at 4x4 with ndf*4), the usual one-layer-shorter variant
for CIFAR-sized images; any other size is refused. Any channel count works (the example takes
nc = 1 for MNIST, 3 otherwise); the default shape is 64x64x3.

A baseline for benchmarks, not a recommendation: genforge's own families are sized for a CPU.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config_check import Whole
from .base import GenerativeModel, ModelConfig

SIZES = {64: 4, 32: 3}  # image size -> stride-2 stages of the ladder (below the 4x4 one)


@dataclass
class RefDCGANTorchConfig(ModelConfig):
    image_shape: tuple[int, int, int] = (3, 64, 64)
    latent_dim: int = 100  # nz
    g_width: int = 64  # ngf
    d_width: int = 64  # ndf
    lr: float = 2e-4
    batch_size: int = 64

    RULES = {"g_width": Whole(min=1), "d_width": Whole(min=1)}

    def cross_check(self):
        if self.image_shape[1] not in SIZES:
            raise self.refuse("image_shape", "(channels, size, size) with a size of 64 (the example's) or 32")


def example_init(module: nn.Module) -> None:
    """The example's initialisation: convolutions N(0, 0.02); BatchNorm weight N(1, 0.02), bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class TorchExampleGenerator(nn.Module):
    def __init__(self, latent_dim: int, width: int, image_shape: tuple[int, int, int]):
        super().__init__()
        c, size, _ = image_shape
        n = SIZES[size]
        chans = [width * 2 ** (n - 1 - i) for i in range(n)]  # ngf*8, *4, *2, *1 at 64x64
        layers: list[nn.Module] = [nn.ConvTranspose2d(latent_dim, chans[0], 4, 1, 0, bias=False),
                                   nn.BatchNorm2d(chans[0]), nn.ReLU(True)]
        for a, b in zip(chans, chans[1:]):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(chans[-1], c, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z[:, :, None, None])


class TorchExampleDiscriminator(nn.Module):
    def __init__(self, width: int, image_shape: tuple[int, int, int]):
        super().__init__()
        c, size, _ = image_shape
        n = SIZES[size]
        chans = [width * 2 ** i for i in range(n)]  # ndf, *2, *4, *8 at 64x64
        layers: list[nn.Module] = [nn.Conv2d(c, chans[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for a, b in zip(chans, chans[1:]):
            layers += [nn.Conv2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(nn.Conv2d(chans[-1], 1, 4, 1, 0, bias=False))  # the example's Sigmoid is in the loss
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


class RefDCGANTorch(GenerativeModel):
    name = "ref-dcgan-torch"
    Config = RefDCGANTorchConfig
    has_discriminator = True

    def __init__(self, config: RefDCGANTorchConfig):
        super().__init__(config)
        self.generator = TorchExampleGenerator(config.latent_dim, config.g_width, config.image_shape)
        self.discriminator = TorchExampleDiscriminator(config.d_width, config.image_shape)
        example_init(self)

    def configure_optimizers(self):
        betas = (0.5, 0.999)
        return {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=self.config.lr, betas=betas),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr, betas=betas),
        }

    def train_step(self, x, y, optimizers):
        return example_step(self.generator, self.discriminator, x * 2 - 1, self.latent(len(x)),
                            optimizers["generator"], optimizers["discriminator"])

    def generate(self, z, labels=None):
        return (self.generator(z) + 1) / 2

    def discriminate(self, x, labels=None):
        return self.discriminator(x * 2 - 1)

    def first_layer_weight(self):
        """The first transposed convolution acts on z (a 1x1 map) as a linear map to its
        4x4 output maps: its weight (nz, C, 4, 4) seen as (C * 16, nz)."""
        return self.generator.main[0].weight.flatten(1).T


def example_step(G, D, real, z, opt_g, opt_d) -> dict[str, torch.Tensor]:
    """The example's update: D on real (label 1) and fake (label 0), then G on the same fakes (label 1)."""
    fake = G(z)
    d_real, d_fake = D(real), D(fake.detach())
    loss_d = (F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real))
              + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake)))
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()

    D.requires_grad_(False)  # the G step needs no gradients for D's weights
    out = D(fake)  # D after its step, as in the example
    loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    D.requires_grad_(True)
    return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(d_real).mean().detach(), "d_fake": torch.sigmoid(d_fake).mean().detach()}
