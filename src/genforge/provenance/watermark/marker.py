"""A watermark with the key it embeds and reads: what `genforge sample/edit --watermark` and
`genforge serve --watermark` hold. Checks once (the key exists and fits the watermark), then marks
batches of images and reads pictures of any size."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from ...errors import GenforgeError
from .bits import check_key
from .files import to_tensor
from .read import DEFAULT_FPR, embed, read_pictures
from .store import Watermark, load_watermark


class Marker:
    """A loaded watermark and its key (the watermark's own unless `key` is given)."""

    def __init__(self, path: str | Path | Watermark, key: str | None = None):
        self.mark = load_watermark(path, "cpu")
        if key is None and self.mark.key is None:
            raise GenforgeError(f"--watermark {path} has no key of its own; give one (--watermark-key HEX)")
        self.key = check_key(key, self.mark.bits) if key is not None else self.mark.key

    def fits(self, image_shape) -> bool:
        """The watermark marks images of this (channels, height, width)."""
        return tuple(image_shape) == tuple(self.mark.image_shape)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> the same, marked (at 8-bit levels), on x's device."""
        return embed(x.detach().cpu().float(), self.mark, self.key).to(x.device)

    def read(self, pictures: list[torch.Tensor], fpr: float = DEFAULT_FPR) -> list[dict]:
        """read_pictures against the key: one reading per (1, C, H, W) picture."""
        return read_pictures(pictures, self.mark, self.key, fpr)

    def read_uploads(self, uploads: list[bytes]) -> list[dict | None]:
        """The readings of uploaded files at their own size (already checked and decoded once by the
        server's reader, so the pixel limits hold); None for an image too small to hold a mark
        (under 8x8), which is judged all the same."""
        from ...data.folder import open_image
        pictures = [to_tensor(np.asarray(open_image(io.BytesIO(data), self.mark.image_shape[0])[0], dtype=np.uint8))
                    for data in uploads]
        return [None if "error" in r else r for r in self.read(pictures)]
