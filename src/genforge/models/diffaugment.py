"""Differentiable augmentation (Zhao et al. 2020): the discriminator sees real and fake
images through the same random colour shifts, translations and cutouts, which keeps it from
memorising a small training set while the generator still gets gradients through them.

Images are in the generator's range [-1, 1]; randomness comes from torch's global RNG.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

FILL = -1.0  # what shifted-in and cut-out pixels become: black, the background of digits


def _uniform(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """One draw per sample, shaped to broadcast over (C, H, W)."""
    return torch.empty(len(x), 1, 1, 1, device=x.device).uniform_(low, high)


def color(x: torch.Tensor) -> torch.Tensor:
    x = x + _uniform(x, -0.5, 0.5)  # brightness
    if x.shape[1] == 3:  # saturation only means something with colour channels
        gray = x.mean(dim=1, keepdim=True)
        x = (x - gray) * _uniform(x, 0.0, 2.0) + gray
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * _uniform(x, 0.5, 1.5) + mean  # contrast


def translation(x: torch.Tensor, ratio: float = 1 / 8) -> torch.Tensor:
    """Shifts each image by up to `ratio` of its size in each direction, filling with FILL."""
    n, _, h, w = x.shape
    sh, sw = round(h * ratio), round(w * ratio)
    padded = F.pad(x, (sw, sw, sh, sh), value=FILL)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1) + sh + dy
    cols = torch.arange(w, device=x.device).view(1, 1, w) + sw + dx
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, ratio: float = 1 / 2) -> torch.Tensor:
    """Blanks one square of `ratio` times the image size per image, centred anywhere in it."""
    n, _, h, w = x.shape
    ch, cw = round(h * ratio), round(w * ratio)
    top = torch.randint(0, h, (n, 1, 1), device=x.device) - ch // 2
    left = torch.randint(0, w, (n, 1, 1), device=x.device) - cw // 2
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)
    return x.masked_fill(inside.unsqueeze(1), FILL)


AUGMENTATIONS = {"color": color, "translation": translation, "cutout": cutout}


def parse_policy(policy: str) -> list[str]:
    """'color,translation' -> ['color', 'translation']; '' -> [] (no augmentation)."""
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown diffaug {unknown[0]!r}; choose from {', '.join(AUGMENTATIONS)}")
    return names


def diff_augment(x: torch.Tensor, policy: list[str]) -> torch.Tensor:
    for name in policy:
        x = AUGMENTATIONS[name](x)
    return x
