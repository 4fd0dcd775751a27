"""Image grids and PNG output. Written here because torchvision (which has make_grid) does
not import beside the CPU build of torch this project pins."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Float images (N, C, H, W) in [0, 1] -> uint8 array (N, H, W, C)."""
    x = images.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def make_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2, scale: int = 1) -> np.ndarray:
    """Tiles (N, C, H, W) images in [0, 1] into one uint8 (H', W', C) picture with a gray border."""
    arr = to_uint8(images)
    n, h, w, c = arr.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 128, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + col * (w + pad)
        grid[y:y + h, x:x + w] = arr[i]
    if scale > 1:
        grid = grid.repeat(scale, 0).repeat(scale, 1)
    return grid


def save_png(array: np.ndarray, path: str | Path, signer=None) -> Path:
    """Saves a uint8 (H, W, C) array (C = 1 or 3) as PNG; with a `signer`
    (genforge.provenance.Signer), carrying its signed manifest."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    if signer is not None:
        signer.save(img, path)
    else:
        img.save(path)
    return path


def with_row_labels(grid: np.ndarray, names: list[str], pad: int = 2, scale: int = 1) -> np.ndarray:
    """A grid (from `make_grid(..., pad, scale)`) with one name per row written in a white margin
    on its left. The grid's own pixels are kept unchanged on the right of the margin."""
    from PIL import Image, ImageDraw, ImageFont

    rows = len(names)
    height, _, channels = grid.shape
    row_h = (height - pad * scale) / rows
    font = ImageFont.load_default(size=max(10, min(16, int(row_h * 0.45))))
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    margin = 12 + max(int(probe.textlength(name, font=font)) for name in names)
    canvas = Image.new("L" if channels == 1 else "RGB", (margin + grid.shape[1], height), "white")
    canvas.paste(Image.fromarray(grid[..., 0] if channels == 1 else grid), (margin, 0))
    draw = ImageDraw.Draw(canvas)
    for i, name in enumerate(names):
        y = pad * scale + (i + 0.5) * row_h - pad * scale / 2
        draw.text((margin - 4, y), name, fill="black", font=font, anchor="rm")
    out = np.asarray(canvas)
    return out[..., None] if out.ndim == 2 else out
