"""How well an autoencoder gives its input back: MSE, PSNR and SSIM on images in [0, 1].

SSIM is written out here because torchmetrics is not a dependency of genforge; it is the
standard Gaussian-window form (Wang et al. 2004) and a few conv2d calls. The 2-D Gaussian is the
outer product of a 1-D one, so each window is filtered as a row pass then a column pass: the same
numbers as the 11x11 window, with 22 multiplications a pixel instead of 121.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import GenforgeError
from .base import Metric

PSNR_CAP = 100.0  # dB for a perfect reconstruction, whose PSNR is infinite


def gaussian_1d(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(size,) float64 Gaussian weights summing to 1."""
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """(size, size) float64 Gaussian weights summing to 1."""
    g = gaussian_1d(size, sigma)
    return torch.outer(g, g)


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03, data_range: float = 1.0) -> torch.Tensor:
    """Per-image SSIM of two (N, C, H, W) batches: the mean of the SSIM map over channels
    and positions. 'Valid' windows only (no padding), as in Wang et al.'s reference code,
    so borders are not biased by made-up pixels; images need H, W >= window."""
    n, c, h, w = x.shape
    if h < window or w < window:
        raise GenforgeError(f"SSIM needs images of at least {window}x{window} pixels, got {h}x{w}")
    x, y = x.double(), y.double()
    # One grouped conv per direction filters all five maps of every channel at once.
    g = gaussian_1d(window, sigma)
    rows = F.conv2d(torch.cat([x, y, x * x, y * y, x * y], 1), g.view(1, 1, 1, window).expand(5 * c, 1, 1, window),
                    groups=5 * c)
    stats = F.conv2d(rows, g.view(1, 1, window, 1).expand(5 * c, 1, window, 1), groups=5 * c)
    mx, my, xx, yy, xy = stats.chunk(5, dim=1)
    vx, vy, cxy = xx - mx * mx, yy - my * my, xy - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return ssim_map.mean(dim=(1, 2, 3))


def _as_images(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim != 4:
        raise GenforgeError(f"{name} must be a (N, C, H, W) tensor, got shape {tuple(x.shape)}")
    x = x.double()
    # A small slack for rounding; [-1, 1] images (a tanh output) are the mistake caught here.
    if len(x) and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise GenforgeError(f"{name} must be in [0, 1], got values in [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    return x


class ReconstructionError(Metric):
    """`update(original, reconstruction)`; compute() -> {"mse", "psnr", "ssim"}.

    mse is the mean over all pixels; psnr (dB, peak 1.0) and ssim are means over images of
    per-image values, psnr capped at 100 dB so a perfect image does not make it infinite.
    """

    def reset(self) -> None:
        self._sq_err, self._pixels, self._psnr, self._ssim, self._n = 0.0, 0, 0.0, 0.0, 0

    def update(self, original, reconstruction) -> None:
        x, y = _as_images(original, "original"), _as_images(reconstruction, "reconstruction")
        if x.shape != y.shape:
            raise GenforgeError(f"original {tuple(x.shape)} and reconstruction {tuple(y.shape)} differ in shape")
        if len(x) == 0:
            return
        sq = (x - y).pow(2)
        per_image = sq.flatten(1).mean(1)
        # An mse of 1e-10 is exactly PSNR_CAP dB with a peak of 1.0; below it, the cap.
        psnr = -10 * torch.log10(per_image.clamp(min=10 ** (-PSNR_CAP / 10)))
        self._sq_err += float(sq.sum())
        self._pixels += sq.numel()
        self._psnr += float(psnr.sum())
        self._ssim += float(ssim(x, y).sum())
        self._n += len(x)

    def compute(self) -> dict[str, float]:
        if self._n == 0:
            raise GenforgeError("reconstruction error of no images")
        return {"mse": self._sq_err / self._pixels, "psnr": self._psnr / self._n, "ssim": self._ssim / self._n}
