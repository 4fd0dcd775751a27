"""Building blocks shared by the convolutional models."""

from __future__ import annotations

import math

from torch import nn


def upsampling_plan(size: int) -> tuple[int, int]:
    """(start size, number of 2x up-samplings) that reach `size`: 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4).

    Starting at 7 for 28x28 avoids the crop or odd padding that a 4 -> 8 -> 16 -> 32
    ladder would need for MNIST-sized images.
    """
    for start in (4, 7, 8):
        n = math.log2(size / start)
        if n >= 1 and n == int(n):
            return start, int(n)
    raise ValueError(f"image size {size} is not supported; use 28, 32 or 64 (or 4/7/8 times a power of two)")


def up_block(c_in: int, c_out: int, batch_norm: bool = True) -> nn.Sequential:
    """2x transposed-conv up-sampling, the DCGAN way (kernel 4, stride 2)."""
    layers: list[nn.Module] = [nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def down_block(c_in: int, c_out: int, batch_norm: bool = False, slope: float = 0.2) -> nn.Sequential:
    """2x strided-conv down-sampling with LeakyReLU."""
    layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=not batch_norm)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(slope, inplace=True))
    return nn.Sequential(*layers)


def channel_ladder(width: int, n: int) -> list[int]:
    """Channel counts from the low-resolution end: width * 2^(n-1), ..., width."""
    return [width * 2 ** (n - 1 - i) for i in range(n)]
