"""Does an image look blurred or resized, softer than the real images a detector trained on?

Blur and down-and-up-sampling wipe out the fine traces a detector reads (grey levels one step
off pure black, the exact edges of a scan), and the detection benchmark shows what is left: on
pasted regions, about a coin toss (BENCHMARKS.md, robustness). So `genforge detect` says when
an image looks that way instead of giving a verdict that reads as sure as any other.

The measure is the steepness of an image's sharpest edges against its own contrast: blur and
resampling lower it, JPEG and noise leave it (BENCHMARKS.md, softness block). A detector's card
keeps the value that only 1% of its real training images fall below; an image under that floor
is "soft". A generator can also make soft images (a VAE's are): the flag says that the picture
is soft, not why, so a soft image judged generated may well be generated.
"""

from __future__ import annotations

import torch

SOFT_QUANTILE = 0.01  # share of the real training images that fall below the floor
EDGES = 8  # the sharpest neighbour differences averaged: one stray pixel does not make an image sharp
MIN_CONTRAST = 8 / 255  # a near-blank image has no edges to measure


def sharpness(x: torch.Tensor) -> torch.Tensor:
    """(N,): the mean of the image's EDGES largest differences between neighbouring pixels, over
    its contrast (1st to 99th percentile of grey levels), on the mean of its channels; NaN for
    an image of less than MIN_CONTRAST."""
    grey = x.float().mean(1)
    steps = torch.cat([(grey[:, 1:, :] - grey[:, :-1, :]).abs().flatten(1),
                       (grey[:, :, 1:] - grey[:, :, :-1]).abs().flatten(1)], 1)
    levels = grey.flatten(1)
    contrast = levels.quantile(0.99, dim=1) - levels.quantile(0.01, dim=1)
    edges = steps.topk(min(EDGES, steps.shape[1]), dim=1).values.mean(1)
    return torch.where(contrast >= MIN_CONTRAST, edges / contrast.clamp_min(MIN_CONTRAST),
                       torch.full_like(edges, float("nan")))


def sharpness_floor(real: torch.Tensor, quantile: float = SOFT_QUANTILE, batch_size: int = 4096) -> float:
    """The sharpness that only `quantile` of the real images (N, C, H, W) in [0, 1] fall below."""
    values = torch.cat([sharpness(chunk) for chunk in real.split(batch_size)])
    return float(values.nanquantile(quantile))


def is_soft(x: torch.Tensor, floor: float) -> torch.Tensor:
    """(N,) bool: images below the sharpness floor (a near-blank image never is)."""
    return sharpness(x) < floor  # NaN compares False
