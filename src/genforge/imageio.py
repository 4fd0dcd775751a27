"""Writing generated images: a folder of PNGs, one `.npz` array, or one grid picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .report.grid import make_grid, save_png, to_uint8


def save_images(images: torch.Tensor, path: str | Path, grid: bool = False) -> Path:
    """Saves float images (N, C, H, W) in [0, 1]; returns what was written.

    - grid: one PNG tiling all images (PATH itself if it ends in .png, else PATH/grid.png);
    - PATH ending in .npz: array `images`, uint8, shape (N, H, W, C);
    - otherwise: PATH/00000.png, PATH/00001.png, ...
    """
    path = Path(path)
    if grid:
        target = path if path.suffix.lower() == ".png" else path / "grid.png"
        return save_png(make_grid(images), target)
    arr = to_uint8(images)
    if path.suffix.lower() == ".npz":
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, images=arr)
        return path
    path.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(len(arr) - 1)))
    for i, img in enumerate(arr):
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(path / f"{i:0{width}d}.png")
    return path
