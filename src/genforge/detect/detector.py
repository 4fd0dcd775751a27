"""The detector network: is an image real, generated, or edited, and where was it edited?

Three views of the image feed it. The pixel branch is a small encoder (full, 1/2 and 1/4
resolution) whose features also drive a U-Net-like decoder that paints a per-pixel map of
edited regions. The spectrum branch reads the whole log-magnitude Fourier spectrum with a
dense layer: the transposed convolutions of generators leave periodic up-sampling peaks at
fixed frequencies, so where a peak sits matters (a pooled convolution would throw that away).
On colour images it reads three spectra, of luminance and two chroma planes (`spectral_planes`).
The histogram branch reads the share of pixels at each grey level (of each channel of a colour
image): a decoder's sigmoid rarely gives pure black or white, real scans and photos do. The image-level logit reads all
three. The pixel branch also sees the image through two log curves, one stretching the darkest
grey levels and one the brightest (`tone_channels`): a region pasted from a decoder leaves
background one or two levels off pure black, a change of 1/255 that the plain pixels hide.
Saved as safetensors + a JSON card, never pickle.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save as st_save
from torch import nn

from ..errors import GenforgeError
from ..train.checkpoint import atomic_write, load_weights, read_safetensors

WEIGHTS, CARD = "detector.safetensors", "detector.json"


@dataclass
class DetectorConfig:
    in_channels: int = 1
    image_size: int = 28
    width: int = 16
    histogram_bins: int = 32
    tone_channels: bool = True  # False: the detectors trained before 2026-11-28 (their cards lack the field)


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


# ITU-R 601 (JPEG's JFIF) luma and the two chroma differences, as rows applied to (R, G, B).
YCBCR = torch.tensor([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])


def spectral_planes(x: torch.Tensor) -> torch.Tensor:
    """The planes whose spectra the detector and the spectral baseline read: a grey image as it is,
    a colour image as luminance Y and chroma Cb, Cr (N, 3, H, W).

    Why Y/Cb/Cr and not R, G and B, nor luminance alone: JPEG, the commonest thing that happens to
    a shared picture, stores chroma at half resolution and quantises it harder, so after one
    re-compression the high frequencies of all three of R, G and B fall alike in real and
    generated images, while in Y they keep what a generator's up-sampling left there. Apart, the
    dense layer can weigh the luminance peaks that survive JPEG on their own. Luminance alone would
    miss what shows mostly in colour: a decoder's paste is often right in brightness and off in hue
    or saturation (a VAE's reconstructions are desaturated), which only the chroma planes carry."""
    if x.shape[1] != 3:
        return x
    return torch.einsum("pc,nchw->nphw", YCBCR.to(x.device, x.dtype), x)


def log_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Centred log-magnitude spectrum of images in [0, 1], roughly in [0, 2], of each of the image's
    `spectral_planes` (its one grey plane, or Y, Cb, Cr)."""
    x = spectral_planes(x)
    magnitude = torch.fft.fft2(x - x.mean(dim=(-2, -1), keepdim=True), norm="ortho").abs()
    return torch.fft.fftshift(torch.log1p(magnitude), dim=(-2, -1)) / 2


def tones(x: torch.Tensor) -> torch.Tensor:
    """x in [0, 1] through log curves that give each of the first (and last) grey levels of an
    8-bit image a visible step: level 1 maps to 0.125 of the way, level 128 to 0.875."""
    stretch = torch.log1p(255 * x.clamp(0, 1)) / math.log(256)
    return torch.cat([stretch, torch.log1p(255 * (1 - x.clamp(0, 1))) / math.log(256)], 1)


def grey_histogram(x: torch.Tensor, bins: int) -> torch.Tensor:
    """Share of pixels in each of `bins` equal grey-level bins, per channel: (N, C * bins)."""
    index = (x.clamp(0, 1) * bins).long().clamp(max=bins - 1).flatten(2)
    counts = torch.zeros(*index.shape[:2], bins, device=x.device).scatter_add_(2, index, torch.ones_like(index,
                                                                                                    dtype=x.dtype))
    return (counts / index.shape[-1]).flatten(1)


class Detector(nn.Module):
    """The detector network: a pixel branch (which also paints the edit map, reading the image
    through log tone curves), a dense layer over the Fourier spectrum, and a grey-level
    histogram, joined into one probability that an image is generated or edited. Build it
    with `load_detector` (a trained one) or `train_detector`; judge with `predict`."""

    def __init__(self, config: DetectorConfig):
        super().__init__()
        self.config = config
        c, w, size = config.in_channels, config.width, config.image_size
        self.at_full = nn.Sequential(_conv(3 * c if config.tone_channels else c, w), _conv(w, w))
        self.at_half = nn.Sequential(_conv(w, 2 * w, stride=2), _conv(2 * w, 2 * w))
        self.at_quarter = nn.Sequential(_conv(2 * w, 4 * w, stride=2), _conv(4 * w, 4 * w))
        self.spectrum = nn.Sequential(nn.Flatten(), nn.Linear(c * size * size, 4 * w), nn.ReLU(inplace=True))
        self.histogram = nn.Sequential(nn.Linear(c * config.histogram_bins, 2 * w), nn.ReLU(inplace=True))
        self.classify = nn.Sequential(nn.Linear(2 * 4 * w + 4 * w + 2 * w, 4 * w), nn.ReLU(inplace=True),
                                      nn.Linear(4 * w, 1))
        self.up_half = _conv(4 * w + 2 * w, w)
        self.up_full = _conv(w + w, w)
        self.to_mask = nn.Conv2d(w, 1, 1)
        # Convolutions on channels-last tensors take oneDNN's faster CPU path: 1.26x the training steps
        # of the default layout in the detection benchmark's 10 minutes on 2 cores (BENCHMARKS.md).
        self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image logits (N,) and edit-map logits (N, 1, H, W) for images (N, C, H, W) in [0, 1]."""
        pixels = (x - 0.5) / 0.5
        if self.config.tone_channels:
            pixels = torch.cat([pixels, (tones(x) - 0.5) / 0.5], 1)
        full = self.at_full(pixels.contiguous(memory_format=torch.channels_last))
        half = self.at_half(full)
        quarter = self.at_quarter(half)
        pooled = torch.cat([quarter.mean(dim=(2, 3)), quarter.amax(dim=(2, 3)), self.spectrum(log_spectrum(x)),
                            self.histogram(grey_histogram(x, self.config.histogram_bins))], 1)
        logit = self.classify(pooled).squeeze(1)
        up = F.interpolate(quarter, size=half.shape[-2:], mode="bilinear", align_corners=False)
        up = self.up_half(torch.cat([up, half], 1))
        up = F.interpolate(up, size=full.shape[-2:], mode="bilinear", align_corners=False)
        mask_logits = self.to_mask(self.up_full(torch.cat([up, full], 1)))
        return logit, mask_logits

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the images the detector judges."""
        return self.config.in_channels, self.config.image_size, self.config.image_size

    def check_images(self, x: torch.Tensor) -> None:
        """Refuses, in one line, images of another mode or size than the detector's: a grey detector
        shown colour images (or a colour one grey images) would judge what it never saw."""
        shape = tuple(x.shape[1:])
        if x.ndim != 4 or shape != self.image_shape:
            c, size, _ = self.image_shape
            got = f"{describe_channels(shape[0])} {shape[1]}x{shape[2]}" if x.ndim == 4 else f"shape {tuple(x.shape)}"
            raise GenforgeError(f"this detector judges {describe_channels(c)} {size}x{size} images, not {got}; "
                                "convert them, or train a detector on images like them")

    @torch.inference_mode()
    def predict(self, x: torch.Tensor, batch_size: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities (N,) that images are generated or edited, and edit maps (N, 1, H, W) in [0, 1],
        on the CPU, whichever device the detector and `x` are on. Images of another mode or size are
        refused (`check_images`)."""
        self.check_images(x)
        self.eval()
        device = next(self.parameters()).device
        probs, maps = [], []
        for chunk in x.split(batch_size):
            logit, mask_logits = self(chunk.to(device))
            probs.append(torch.sigmoid(logit).cpu())
            maps.append(torch.sigmoid(mask_logits).cpu())
        return torch.cat(probs), torch.cat(maps)


def describe_channels(channels: int) -> str:
    """"grey (1 channel)", "colour (3 channels)": how messages name an image mode."""
    return {1: "grey (1 channel)", 3: "colour (3 channels)"}.get(channels, f"{channels}-channel")


def save_detector(detector: Detector, directory: str | Path, card: dict) -> Path:
    """Writes DIR/detector.safetensors and DIR/detector.json (config + whatever `card` holds)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in detector.state_dict().items()}
    atomic_write(directory / WEIGHTS, st_save(tensors))
    card = {"config": asdict(detector.config), **card}
    atomic_write(directory / CARD, (json.dumps(card, indent=2) + "\n").encode())
    return directory


def load_detector(directory: str | Path, device: str | torch.device = "cpu") -> tuple[Detector, dict]:
    """The detector of DIR in eval mode on `device`, and its card."""
    directory = Path(directory)
    if not directory.is_dir():
        raise GenforgeError(f"detector directory {directory} does not exist; train one with `genforge detect train`")
    if not (directory / CARD).is_file() or not (directory / WEIGHTS).is_file():
        raise GenforgeError(f"{directory} is not a genforge detector (no {CARD} and {WEIGHTS}); "
                            "train one with `genforge detect train`")
    try:
        card = json.loads((directory / CARD).read_text())
        detector = Detector(DetectorConfig(**{"tone_channels": False, **card["config"]}))
    except (ValueError, KeyError, TypeError):
        raise GenforgeError(f"{directory / CARD} is damaged or not a detector card") from None
    tensors, _ = read_safetensors(directory / WEIGHTS)
    load_weights(detector, tensors, directory / WEIGHTS)
    return detector.to(device).eval(), card
