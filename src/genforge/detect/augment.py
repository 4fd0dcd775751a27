"""What happens to images on their way around the internet, as training augmentation and as
the perturbations a detector is measured under.

A detector trained on pristine files learns the cheapest cue (exact pixel statistics of a
PNG) and fails once an image is re-compressed or resized. Applying the same random
blur / noise / JPEG / rescaling to real and fake images alike removes those cues, so what
is left to learn is what generation itself leaves behind.
"""

from __future__ import annotations

import io
import math
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def quantise(x: torch.Tensor) -> torch.Tensor:
    """Rounds to the 256 levels of an 8-bit image file, which every image shown to a detector has."""
    return x.clamp(0, 1).mul(255).round().div(255)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-t ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    c = x.shape[1]
    padded = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def add_noise(x: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    return (x + std * torch.randn(x.shape, generator=generator)).clamp(0, 1)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    """Round trip through Pillow's JPEG encoder at `quality` (per image: JPEG is a file format)."""
    out = []
    for img in (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():
        buffer = io.BytesIO()
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(buffer, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(buffer), dtype=np.uint8).reshape(img.shape)
        out.append(torch.from_numpy(decoded.copy()))
    return torch.stack(out).permute(0, 3, 1, 2).float().div(255)


def resample(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Down-sampling by `factor` and back up to the original size."""
    h, w = x.shape[-2:]
    small = F.interpolate(x, size=(max(1, round(h / factor)), max(1, round(w / factor))), mode="bilinear",
                          antialias=True, align_corners=False)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


# The fixed perturbations of the benchmark (the list).
PERTURBATIONS = {
    "jpeg-q75": partial(jpeg, quality=75),
    "blur-sigma1": partial(gaussian_blur, sigma=1.0),
    "noise-std0.03": lambda x: add_noise(x, 0.03, torch.Generator().manual_seed(0)),  # the same noise each call
    "resample-2x": partial(resample, factor=2.0),
}


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


# The training augmentations: each takes a batch and the seeded generator, and draws its strength
# once per batch from a range around the benchmark's perturbation of the same kind.
AUGMENTATIONS = {
    "blur": lambda b, g: gaussian_blur(b, _uniform(g, 0.3, 1.5)),
    "noise": lambda b, g: add_noise(b, _uniform(g, 0.005, 0.05), g),
    "jpeg": lambda b, g: jpeg(b, int(torch.randint(60, 96, (), generator=g))),
    "resample": lambda b, g: resample(b, _uniform(g, 1.25, 2.5)),
}


def parse_augmentations(spec: str) -> tuple[str, ...]:
    """'blur,jpeg' -> ('blur', 'jpeg'), checked against AUGMENTATIONS ('' is none)."""
    names = tuple(name.strip() for name in spec.split(",") if name.strip())
    unknown = [name for name in names if name not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown[0]!r}; choose from {', '.join(AUGMENTATIONS)}")
    return names


def augment(x: torch.Tensor, generator: torch.Generator, p: float = 0.25,
            ops: tuple[str, ...] = tuple(AUGMENTATIONS)) -> torch.Tensor:
    """Each augmentation of `ops` hits a random share p of the batch, with a strength drawn once
    per batch (AUGMENTATIONS); the result is quantised."""
    x = x.clone()
    for name in ops:
        chosen = torch.rand(len(x), generator=generator) < p
        if chosen.any():
            x[chosen] = AUGMENTATIONS[name](x[chosen], generator)
    return quantise(x)
