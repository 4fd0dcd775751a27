"""What a shared image meets on its way: JPEG, noise, blur, resizing, crops, uint8 pixels.

Two uses, one set of operations:

- training draws each distortion at a random strength (`TRAINING`, `apply_training`), every
  one differentiable or passed straight through, so the embedder learns marks that survive;
- measuring applies each at one fixed, stated strength (`ATTACKS`, `attack`), the settings the
  benchmark reports: JPEG quality 75, Gaussian noise of standard deviation 0.05 (about 13 of 255
  levels), a Gaussian blur of sigma 1, halving then doubling the size, and a crop that keeps
  75% of the area at a random place (read at its own, smaller size).

Every image ends as 8-bit pixels, as it would in a file.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .jpeg import jpeg_proxy, real_jpeg, straight_through


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Rounding to 8-bit levels, with the identity's gradient."""
    x = x.clamp(0, 1)
    return straight_through(x, torch.round(x * 255) / 255)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A separable Gaussian blur (kernel of 2*ceil(3 sigma)+1 taps, edges reflected)."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    radius = min(radius, x.shape[-1] - 1, x.shape[-2] - 1)
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def down_up(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Resized to `factor` of its size (antialiased bilinear) and back (bilinear)."""
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(2, round(h * factor)), max(2, round(w * factor))), mode="bilinear",
                          antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)


def crop_window(h: int, w: int, area: float, generator: torch.Generator | None = None) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a window keeping `area` of an h x w image (each side
    sqrt(area) of the image's, at least 8 pixels) at a random place."""
    side = math.sqrt(area)
    ch, cw = min(h, max(8, round(h * side))), min(w, max(8, round(w * side)))
    top = int(torch.randint(h - ch + 1, (1,), generator=generator))
    left = int(torch.randint(w - cw + 1, (1,), generator=generator))
    return top, left, ch, cw


def crop(x: torch.Tensor, area: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A window keeping `area` of the images, all cut at the same random place: smaller images."""
    top, left, ch, cw = crop_window(*x.shape[-2:], area, generator)
    return x[..., top:top + ch, left:left + cw]


def place(x: torch.Tensor, top: int, left: int, h: int, w: int) -> torch.Tensor:
    """A crop put back in an h x w frame at (top, left), the rest filled by repeating its edges:
    how the reader sees a crop at each place it tries (read.py)."""
    return F.pad(x, (left, w - x.shape[-1] - left, top, h - x.shape[-2] - top), mode="replicate")


def noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    return (x + std * torch.randn(x.shape, generator=generator).to(x)).clamp(0, 1)


# --- fixed attacks, for measuring -----------------------------------------------------------

ATTACKS = ("clean", "jpeg75", "noise", "blur", "resize", "crop")
NOISE_STD = 0.05
CROP_AREA = 0.75


def attack(images: torch.Tensor, name: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """`images` (N, C, H, W) in [0, 1] after the named attack of ATTACKS, as 8-bit pixels."""
    x = quantise(images)
    if name == "clean":
        out = x
    elif name == "jpeg75":
        out = real_jpeg(x, 75)
    elif name == "noise":
        out = noise(x, NOISE_STD, generator)
    elif name == "blur":
        out = gaussian_blur(x, 1.0)
    elif name == "resize":
        out = down_up(x, 0.5)
    elif name == "crop":
        out = torch.cat([crop(one, CROP_AREA, generator) for one in x.split(1)])  # each at its own place
    else:
        raise ValueError(f"unknown attack {name!r}; known: {', '.join(ATTACKS)}")
    return quantise(out).detach()


# --- random distortions, for training -------------------------------------------------------

TRAINING = ("identity", "jpeg", "jpeg_proxy", "noise", "blur", "resize", "crop")


def _uniform(lo: float, hi: float, generator) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def apply_training(x: torch.Tensor, name: str, strength: float, generator: torch.Generator | None = None
                   ) -> torch.Tensor:
    """One training distortion of TRAINING at a random setting; `strength` in [0, 1] scales how
    hard the settings may get (a warm-up starts gently). The input is 8-bit already; so is the output."""
    s = strength
    if name == "identity":
        out = x
    elif name == "jpeg":
        out = straight_through(x, real_jpeg(x, round(95 - _uniform(0, 45, generator) * s)))
    elif name == "jpeg_proxy":
        out = jpeg_proxy(x, 95 - _uniform(0, 45, generator) * s)
    elif name == "noise":
        out = noise(x, _uniform(0, 0.08, generator) * s, generator)
    elif name == "blur":
        out = gaussian_blur(x, _uniform(0.3, 1.5, generator) * s)
    elif name == "resize":
        out = down_up(x, 1 - _uniform(0.2, 0.6, generator) * s)
    elif name == "crop":  # cut, then put back where it was: the reader tries every place (read.py)
        h, w = x.shape[-2:]
        top, left, ch, cw = crop_window(h, w, 1 - _uniform(0.0, 0.5, generator) * s, generator)
        out = place(x[..., top:top + ch, left:left + cw], top, left, h, w)
    else:
        raise ValueError(f"unknown training distortion {name!r}; known: {', '.join(TRAINING)}")
    return quantise(out)
