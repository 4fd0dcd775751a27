"""JPEG, the distortion a shared image meets most: the real codec and a differentiable stand-in.

Training a watermark needs gradients through JPEG, which rounds. Two ways are used together:

- `real_jpeg`: Pillow's own encoder and decoder (libjpeg, 4:2:0 chroma for colour), exact but
  with no gradient; `straight_through` passes the gradient as if the codec were the identity,
  so the forward pass is the real artefact and the backward pass is a fair approximation.
- `jpeg_proxy`: the same steps written in torch (YCbCr, 2x2 chroma averaging, 8x8 DCT,
  division by the quality-scaled standard tables, rounding, and back), with rounding replaced
  by round(x) + (x - round(x))^3 (Shin and Song, 2017), whose gradient is not zero.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# The example tables of the JPEG standard (ITU T.81, Annex K), luminance and chrominance.
LUMA = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float32)
CHROMA = torch.full((8, 8), 99.0)
CHROMA[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]],
                              dtype=torch.float32)


def _dct_matrix() -> torch.Tensor:
    d = torch.zeros(8, 8)
    for k in range(8):
        for n in range(8):
            d[k, n] = math.cos(math.pi * (2 * n + 1) * k / 16) * (math.sqrt(1 / 8) if k == 0 else math.sqrt(2 / 8))
    return d


DCT = _dct_matrix()


def real_jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] after a round trip through Pillow's JPEG at `quality`."""
    arr = images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = []
    for img in arr:
        pil = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        buffer = io.BytesIO()
        pil.save(buffer, format="JPEG", quality=int(quality))
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
        out.append(decoded[..., None] if decoded.ndim == 2 else decoded)
    back = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float().div(255)
    return back.to(images.device)


def straight_through(images: torch.Tensor, distorted: torch.Tensor) -> torch.Tensor:
    """`distorted` in the forward pass, the gradient of the identity in the backward pass."""
    return images + (distorted - images).detach()


def quality_scale(quality: float) -> float:
    """The IJG scaling of the standard tables for a quality in 1..100 (libjpeg's formula)."""
    quality = min(max(quality, 1.0), 100.0)
    return (5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality) / 100.0


def soft_round(x: torch.Tensor) -> torch.Tensor:
    """round(x) in value, with a non-zero gradient: round(x) + (x - round(x))^3."""
    r = torch.round(x)
    return r + (x - r) ** 3


def _rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return torch.stack([y, cb, cr], 1)


def _ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    y, cb, cr = x[:, 0], x[:, 1] - 128, x[:, 2] - 128
    return torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1)


def _blocks_through(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """One plane (N, 1, H, W) in 0..255, H and W multiples of 8: DCT, quantise, dequantise, IDCT."""
    n, _, h, w = x.shape
    blocks = (x - 128).reshape(n, h // 8, 8, w // 8, 8).permute(0, 1, 3, 2, 4)  # (N, h/8, w/8, 8, 8)
    d = DCT.to(x)
    coeffs = d @ blocks @ d.T
    coeffs = soft_round(coeffs / table) * table
    back = d.T @ coeffs @ d
    return back.permute(0, 1, 3, 2, 4).reshape(n, 1, h, w) + 128


def jpeg_proxy(images: torch.Tensor, quality: float) -> torch.Tensor:
    """A differentiable approximation of JPEG at `quality` for images (N, C, H, W) in [0, 1]."""
    n, c, h, w = images.shape
    pad_h, pad_w = (-h) % 16, (-w) % 16
    x = F.pad(images * 255, (0, pad_w, 0, pad_h), mode="replicate")
    scale = quality_scale(quality)
    luma = (LUMA * scale).round().clamp(1, 255).to(x)
    chroma = (CHROMA * scale).round().clamp(1, 255).to(x)
    if c == 1:
        out = _blocks_through(x, luma)
    else:
        ycc = _rgb_to_ycbcr(x)
        planes = [_blocks_through(ycc[:, :1], luma)]
        for i in (1, 2):  # 4:2:0: chroma at half resolution, as Pillow writes it
            small = F.avg_pool2d(ycc[:, i:i + 1], 2)
            small = F.pad(small, (0, (-small.shape[-1]) % 8, 0, (-small.shape[-2]) % 8), mode="replicate")
            small = _blocks_through(small, chroma)[..., : x.shape[-2] // 2, : x.shape[-1] // 2]
            planes.append(F.interpolate(small, scale_factor=2, mode="bilinear", align_corners=False))
        out = _ycbcr_to_rgb(torch.cat(planes, 1))
    return out[..., :h, :w].div(255).clamp(0, 1)
