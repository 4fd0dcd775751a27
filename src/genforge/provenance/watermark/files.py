"""Image files as the watermark reads and marks them: grey or RGB as the watermark's, at their own
size, transparency composited onto white (data/folder.py's reader, the one data sets use)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ...data.folder import open_image
from ...errors import DataError


def open_picture(path: Path, channels: int) -> Image.Image:
    """The file's picture in L (channels 1) or RGB; DataError in one line for a file Pillow cannot read."""
    try:
        im, _ = open_image(path, channels)
    except Exception as e:  # Pillow signals a bad file with many exception types
        raise DataError(f"{path} is not a readable image ({type(e).__name__}: {e})") from None
    return im


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    """(H, W[, C]) uint8 -> (1, C, H, W) in [0, 1]."""
    arr = arr.reshape(arr.shape[0], arr.shape[1], -1)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255


def read_picture(path: str | Path, channels: int) -> torch.Tensor:
    """One image file as (1, C, H, W) in [0, 1] at its own size."""
    return to_tensor(np.asarray(open_picture(Path(path), channels), dtype=np.uint8))
