"""The server's watermark (`genforge serve --watermark MARK_DIR`): every image the server makes for
a model of the watermark's image shape carries the key in its pixels (samples, edit results,
slider images), and /v1/detect reads the key in each upload. Models of another shape are served
unmarked and say so in /v1/models (`watermarked: false`).

The marking itself is the library's (provenance/watermark/read.py); this module only holds the
loaded watermark and the key, and converts between what the routes hold and what it takes.
"""

from __future__ import annotations

import io

import numpy as np
import torch

from ..provenance.watermark import check_key, embed, load_watermark, read_marks
from ..provenance.watermark.files import to_tensor


class ServerMark:
    """A watermark and the key the server embeds (the watermark's own unless one is given)."""

    def __init__(self, path, key: str | None = None):
        from ..errors import GenforgeError
        self.mark = load_watermark(path, "cpu")
        if key is None and self.mark.key is None:
            raise GenforgeError(f"--watermark {path} has no key of its own; give one (--watermark-key HEX)")
        self.key = check_key(key, self.mark.bits) if key is not None else self.mark.key

    def fits(self, model) -> bool:
        """The watermark marks this model's images (the same channels, height and width)."""
        return tuple(model.image_shape) == tuple(self.mark.image_shape)

    def images(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> the same, marked (at 8-bit levels), on x's device."""
        return embed(x.detach().cpu().float(), self.mark, self.key).to(x.device)

    def read(self, data: bytes) -> dict | None:
        """The reading of an uploaded file at its own size (already checked and decoded once by the
        detect route's reader, so the pixel limits hold), against the server's key; None for an
        image too small to hold a mark (under 8x8), which is judged all the same."""
        from ..data.folder import open_image
        from ..errors import GenforgeError
        im, _ = open_image(io.BytesIO(data), self.mark.image_shape[0])
        try:
            return read_marks(to_tensor(np.asarray(im, dtype=np.uint8)), self.mark, self.key)[0]
        except GenforgeError:
            return None
