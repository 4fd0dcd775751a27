"""The two networks of a learned watermark (after HiDDeN, Zhu et al. 2018), sized for small images.

- `Embedder`: from an image and K bits, a residual to add to the image. It works at a reduced
  resolution (the image averaged over `scale` x `scale` pixels) and its residual is upsampled,
  so the mark lives in the low frequencies that JPEG, blur and resizing keep. The residual is
  bounded by `strength` per pixel (tanh), and the bits enter at every position alike, so any
  part of the image carries all of them (what lets a crop still be read).
- `Extractor`: from an image of any size (at least 8 pixels a side), K logits, one per bit: a
  small convolutional stack and an average over all positions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import GenforgeError


@dataclass
class MarkConfig:
    """The shape of a watermark: what it marks and the size of its networks."""

    image_shape: tuple[int, int, int] = (1, 28, 28)  # (channels, height, width) of the images it marks
    bits: int = 32  # K, a multiple of 4 (a key is K/4 hex digits)
    width: int = 32  # channels of both networks
    embed_depth: int = 3  # convolutions of the embedder after the bits join
    extract_depth: int = 4  # convolutions of the extractor
    scale: int = 2  # the embedder works at 1/scale of the image's resolution
    message_channels: int = 8  # channels of the bits' spatial map
    strength: float = 0.1  # the largest change to one pixel value (images in [0, 1])

    def __post_init__(self) -> None:
        self.image_shape = tuple(int(v) for v in self.image_shape)
        c, h, w = self.image_shape
        if c not in (1, 3) or h < 8 or w < 8:
            raise GenforgeError(f"a watermark marks images of 1 or 3 channels and at least 8x8 pixels, "
                                f"not {c}x{h}x{w}")
        if self.bits < 4 or self.bits % 4:
            raise GenforgeError(f"a watermark carries a multiple of 4 bits (a key is written in hex digits), "
                                f"not {self.bits}")
        if min(self.width, self.embed_depth, self.extract_depth, self.scale, self.message_channels) < 1:
            raise GenforgeError("a watermark's width, depths, scale and message_channels must be at least 1")
        if not 0 < self.strength <= 1:
            raise GenforgeError(f"a watermark's strength must be in (0, 1], not {self.strength}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["image_shape"] = list(self.image_shape)
        return d


def _block(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Embedder(nn.Module):
    """(images in [0, 1], bits in {0, 1}) -> a residual bounded by `strength`, of the images' size."""

    def __init__(self, config: MarkConfig):
        super().__init__()
        c, w = config.image_shape[0], config.width
        self.config = config
        self.grid = grid_size(config)
        self.features = nn.Sequential(_block(c, w), _block(w, w))
        self.message = nn.Linear(config.bits, config.message_channels * self.grid[0] * self.grid[1])
        layers = [_block(w + config.message_channels + c, w)] + [_block(w, w) for _ in range(config.embed_depth - 1)]
        self.body = nn.Sequential(*layers)
        self.out = nn.Conv2d(w, c, 1)

    def forward(self, images: torch.Tensor, bits: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        small = F.adaptive_avg_pool2d(images, self.grid) * 2 - 1
        feats = self.features(small)
        msg = self.message(bits * 2 - 1).view(len(bits), -1, *self.grid)
        residual = self.out(self.body(torch.cat([feats, msg, small], 1)))
        residual = F.interpolate(residual, size=(h, w), mode="bilinear", align_corners=False)
        return self.config.strength * torch.tanh(residual)


class Extractor(nn.Module):
    """Images in [0, 1] of the watermark's size -> K logits; a logit above 0 reads a 1."""

    def __init__(self, config: MarkConfig):
        super().__init__()
        c, w = config.image_shape[0], config.width
        self.grid = grid_size(config)
        downs = max(0, (config.scale - 1).bit_length())  # stride-2 blocks down to about the grid
        layers = [_block(c, w)] + [_block(w, w, stride=2 if i < downs else 1) for i in range(config.extract_depth - 1)]
        self.body = nn.Sequential(*layers)
        self.squeeze = nn.Conv2d(w, config.message_channels, 1)
        self.head = nn.Linear(config.message_channels * self.grid[0] * self.grid[1], config.bits)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.body(images * 2 - 1)
        return self.head(self.squeeze(F.adaptive_avg_pool2d(feats, self.grid)).flatten(1))


def grid_size(config: MarkConfig) -> tuple[int, int]:
    """The embedder's working resolution: the image's divided by `scale`, rounded up."""
    _, h, w = config.image_shape
    return -(-h // config.scale), -(-w // config.scale)
