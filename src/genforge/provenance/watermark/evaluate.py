"""Measuring a watermark: bit accuracy, true-positive rate at a false-positive rate, false
positives on unmarked images, and what marking costs the image (PSNR)."""

from __future__ import annotations

import torch

from .distortions import ATTACKS, attack
from .read import DEFAULT_FPR, embed_bits, read_bits, threshold
from .store import Watermark


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image pair (images in [0, 1])."""
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-12)
    return -10 * torch.log10(mse)


def agreement(images: torch.Tensor, mark: Watermark, bits: torch.Tensor) -> tuple[torch.Tensor, int]:
    """How many bits of each image's reading agree with its row of `bits` (N, K): (N,) ints, and
    the number of places tried (more than 1 for crops)."""
    _, agreed, tried = read_bits(images, mark, bits)
    return agreed, tried


def measure(mark: Watermark, images: torch.Tensor, seed: int = 0, attacks=ATTACKS, fpr: float = DEFAULT_FPR) -> dict:
    """Marks `images` (uint8, or floats in [0, 1]) each with its own random key and reports, clean and
    after each attack of distortions.ATTACKS, the bit accuracy and the true-positive rate (the
    share read as marked at `fpr`); the false positives among the same images unmarked (read
    against the keys they were not given); and the mean PSNR of marked against original."""
    generator = torch.Generator().manual_seed(seed)
    x = images.float().div(255) if images.dtype == torch.uint8 else images.float()
    bits = torch.randint(2, (len(x), mark.bits), generator=generator).float()
    marked = embed_bits(x, mark, bits)
    needed = threshold(mark.bits, fpr)
    result = {"images": len(x), "bits": mark.bits, "threshold_bits": needed, "fpr": fpr,
              "psnr_db": round(float(psnr(marked, x).mean()), 2)}
    for name in attacks:
        agreed, tried = agreement(attack(marked, name, generator), mark, bits)
        result[name] = {"bit_accuracy": round(float(agreed.float().mean()) / mark.bits, 4),
                        "tpr": round(float((agreed >= threshold(mark.bits, fpr, tried)).float().mean()), 4)}
        if tried > 1:
            result[name]["places_tried"] = tried
    unmarked, _ = agreement(attack(x, "clean"), mark, bits)
    result["false_positives"] = int((unmarked >= needed).sum())
    result["unmarked_bit_accuracy"] = round(float(unmarked.float().mean()) / mark.bits, 4)
    return result
