"""Inpainting masks: float tensors (N or 1, 1, H, W) where 1 marks a missing pixel.

From the user: a PNG of the image's size (white = missing) or a box "x0,y0,x1,y1" (pixel
corners, x1/y1 excluded). For measuring: a centre box, or a random half of the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DataError


def box_mask(box: str, size: int) -> torch.Tensor:
    """The mask (1, 1, size, size) of a box written "x0,y0,x1,y1"."""
    try:
        x0, y0, x1, y1 = (int(v) for v in box.split(","))
    except ValueError:
        raise DataError(f"bad box '{box}'; write x0,y0,x1,y1 in pixels, e.g. 7,7,21,21") from None
    if not (0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size):
        raise DataError(f"box '{box}' is not inside the {size}x{size} image with x0 < x1 and y0 < y1")
    mask = torch.zeros(1, 1, size, size)
    mask[..., y0:y1, x0:x1] = 1
    return mask


def read_mask(path: str | Path, size: int) -> torch.Tensor:
    """The mask (1, 1, size, size) in a PNG of the image's size: pixels brighter than mid-grey are missing."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as im:
            pixels = np.asarray(im.convert("L"), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"mask {path} does not exist") from None
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"mask {path} is not a readable image ({e})") from None
    if pixels.shape != (size, size):
        raise DataError(f"mask {path} is {pixels.shape[1]}x{pixels.shape[0]}; it must be the image's size, "
                        f"{size}x{size}")
    mask = torch.from_numpy(pixels > 127).float()[None, None]
    if not mask.any():
        raise DataError(f"mask {path} marks no pixel as missing (white = missing)")
    return mask


def centre_mask(size: int, side: int) -> torch.Tensor:
    """A (1, 1, size, size) mask of a centred side x side square, 1 = missing."""
    start = (size - side) // 2
    return box_mask(f"{start},{start},{start + side},{start + side}", size)


def random_half_masks(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """n masks (n, 1, size, size), each hiding a random one of the top, bottom, left or right halves."""
    half = size // 2
    halves = [(0, 0, size, half), (0, half, size, size), (0, 0, half, size), (half, 0, size, size)]
    masks = torch.zeros(n, 1, size, size)
    for i, which in enumerate(torch.randint(4, (n,), generator=generator).tolist()):
        x0, y0, x1, y1 = halves[which]
        masks[i, :, y0:y1, x0:x1] = 1
    return masks
