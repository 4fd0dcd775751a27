"""Marking images with a key, reading keys back, and how sure a reading is.

How sure: an image without the mark reads each of the K bits as a coin toss, so the number of
bits that agree with an expected key is binomial(K, 1/2). The p-value of a reading is the chance
that such an image agrees on at least as many bits: P(X >= agreed). An image is called `marked`
when that chance is at most the false-positive rate asked for (default 1e-6, one unmarked image
in a million); for 32 bits that means 30 or more bits agree, for 48 bits 41 or more.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from scipy.stats import binom

from ...errors import GenforgeError
from .bits import bits_to_key, check_key, key_to_bits
from .distortions import place
from .store import Watermark, load_watermark

DEFAULT_FPR = 1e-6
BATCH = 512


def p_value(agreed: int, bits: int) -> float:
    """P(X >= agreed) for X ~ binomial(bits, 1/2): the chance that an unmarked image agrees with
    a key on at least `agreed` of its `bits` bits."""
    return float(binom.sf(agreed - 1, bits, 0.5))


def threshold(bits: int, fpr: float = DEFAULT_FPR, tried: int = 1) -> int:
    """The fewest agreeing bits whose p-value (times `tried`, the places tried for a crop) is at
    most `fpr`; bits + 1 if no count is enough."""
    _check_fpr(fpr)
    for agreed in range(bits + 1):
        if tried * p_value(agreed, bits) <= fpr:
            return agreed
    return bits + 1


def _check_fpr(fpr: float) -> None:
    if not 0 < fpr < 1:
        raise GenforgeError(f"the false-positive rate must be between 0 and 1, got {fpr}")


def _as_float(images: torch.Tensor) -> torch.Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise GenforgeError("images must be a tensor (N, C, H, W) with values in [0, 1]")
    return images.float().div(255) if images.dtype == torch.uint8 else images.float()


def _channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """1 <-> 3 channels as data sets convert them (grey repeated; ITU-R 601 luma)."""
    c = x.shape[1]
    if c == channels:
        return x
    if (c, channels) == (1, 3):
        return x.repeat(1, 3, 1, 1)
    if (c, channels) == (3, 1):
        return (x * torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    raise GenforgeError(f"images of {c} channels cannot be read by a watermark for {channels}-channel images")


def prepare_for_reading(images: torch.Tensor, mark: Watermark) -> torch.Tensor:
    """Images as the extractor reads them: the mark's channels, and an image larger than the
    mark's size resized down to it (an enlarged copy). A smaller one is kept as it is (a crop)."""
    x = _channels(_as_float(images), mark.image_shape[0])
    _, h, w = mark.image_shape
    if x.shape[-2] > h or x.shape[-1] > w:
        x = F.interpolate(x, size=(min(h, x.shape[-2]), min(w, x.shape[-1])), mode="bilinear",
                          antialias=True, align_corners=False)
    if min(x.shape[-2:]) < 8:
        raise GenforgeError(f"images of {x.shape[-2]}x{x.shape[-1]} pixels are too small to read a watermark "
                            "from; it needs at least 8x8")
    return x


def placements(images: torch.Tensor, mark: Watermark) -> list[tuple[int, int]]:
    """Where a crop may have come from: every (top, left) at which it fits in the mark's frame;
    [(0, 0)] for an image of the mark's size."""
    _, h, w = mark.image_shape
    return [(t, l) for t in range(h - images.shape[-2] + 1) for l in range(w - images.shape[-1] + 1)]


def candidate_logits(images: torch.Tensor, mark: Watermark) -> torch.Tensor:
    """The extractor's K logits (N, P, K) for each image at each of the P placements, on the CPU."""
    x = prepare_for_reading(images, mark)
    _, h, w = mark.image_shape
    where = placements(x, mark)
    device = next(mark.extractor.parameters()).device
    out = []
    with torch.inference_mode():
        for top, left in where:
            framed = place(x, top, left, h, w)
            out.append(torch.cat([mark.extractor(framed[i:i + BATCH].to(device)).cpu()
                                  for i in range(0, len(framed), BATCH)]))
    return torch.stack(out, 1)


def read_bits(images: torch.Tensor, mark: Watermark, expected: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None, int]:
    """(bits read (N, K) bool, bits agreeing with `expected` (N,) or None, placements tried P).

    A crop is read at every place it fits in the mark's frame (edges repeated to fill it), and
    the reading kept is the one that agrees best with `expected` (N, K) (without one, the most
    confident). Trying P places gives an unmarked image P chances, which `read_marks` pays for
    by multiplying the p-value by P."""
    candidates = candidate_logits(images, mark)  # (N, P, K)
    reads = candidates > 0
    if expected is not None:
        agreeing = (reads == expected.bool()[:, None, :]).sum(2)  # (N, P)
        best = agreeing.argmax(1)
    else:
        agreeing, best = None, candidates.abs().mean(2).argmax(1)
    rows = torch.arange(len(reads))
    return reads[rows, best], (agreeing[rows, best] if agreeing is not None else None), candidates.shape[1]


def read_marks(images: torch.Tensor, mark_dir: str | Path | Watermark, key: str | None = None,
               fpr: float = DEFAULT_FPR) -> list[dict]:
    """What the watermark of `mark_dir` reads in each image (N, C, H, W) in [0, 1].

    Each answer: `key` (hex of the bits read), `matches` (the key compared with: `key` if given,
    else the watermark's own key, None if it has none), `bits_agree` (how many bits agree with
    it), `bits` (K), `p_value` (the chance that an unmarked image agrees on that many or more:
    the binomial(K, 1/2) tail, times the number of places tried for a crop) and `marked`
    (p_value at most `fpr`). Images larger than the watermark's size are resized down to it;
    smaller ones are read as crops."""
    mark = load_watermark(mark_dir)
    _check_fpr(fpr)
    expected = check_key(key, mark.bits) if key is not None else mark.key
    target = key_to_bits(expected, mark.bits) if expected is not None else None
    n = len(images)
    reads, agreed, tried = read_bits(images, mark, target.expand(n, -1) if target is not None else None)
    out = []
    for i, row in enumerate(reads):
        count = int(agreed[i]) if agreed is not None else 0
        p = min(1.0, tried * p_value(count, mark.bits)) if agreed is not None else 1.0
        out.append({"key": bits_to_key(row), "matches": expected, "bits_agree": count, "bits": mark.bits,
                    "p_value": p, "marked": bool(agreed is not None and p <= fpr)})
    return out


def embed(images: torch.Tensor, mark_dir: str | Path | Watermark, key: str | None = None) -> torch.Tensor:
    """`images` (N, C, H, W) in [0, 1], of the watermark's shape, with `key` (default: the
    watermark's own key) embedded; returned on the CPU at 8-bit levels, as a file would hold them."""
    mark = load_watermark(mark_dir)
    x = _as_float(images)
    if tuple(x.shape[1:]) != mark.image_shape:
        c, h, w = mark.image_shape
        raise GenforgeError(f"this watermark marks {c}x{h}x{w} images (channels x height x width), "
                            f"not {x.shape[1]}x{x.shape[2]}x{x.shape[3]}")
    if key is None and mark.key is None:
        raise GenforgeError("this watermark has no key of its own; give one (--key HEX)")
    bits = key_to_bits(key if key is not None else mark.key, mark.bits)
    return embed_bits(x, mark, bits.expand(len(x), -1))


def embed_bits(images: torch.Tensor, mark: Watermark, bits: torch.Tensor) -> torch.Tensor:
    """Images (N, C, H, W) in [0, 1] of the mark's shape, each marked with its own row of `bits`
    (N, K) of 0s and 1s; on the CPU, at 8-bit levels."""
    device = next(mark.embedder.parameters()).device
    out = []
    with torch.inference_mode():
        for i in range(0, len(images), BATCH):
            chunk = images[i:i + BATCH].to(device)
            marked = chunk + mark.embedder(chunk, bits[i:i + BATCH].to(device))
            out.append(marked.clamp(0, 1).mul(255).round().div(255).cpu())
    return torch.cat(out)


def read_pictures(pictures: list[torch.Tensor], mark_dir: str | Path | Watermark, key: str | None = None,
                  fpr: float = DEFAULT_FPR) -> list[dict]:
    """`read_marks` of pictures (1, C, H, W) of any sizes, in order: those of one size are read in
    one batch. A picture too small to hold a mark gets {"error": why, "marked": False}."""
    mark = load_watermark(mark_dir)
    if key is not None:
        check_key(key, mark.bits)  # a bad key is one error for all, not a reading per picture
    out: list[dict | None] = [None] * len(pictures)
    by_shape: dict[tuple, list[int]] = {}
    for i, picture in enumerate(pictures):
        by_shape.setdefault(tuple(picture.shape[1:]), []).append(i)
    for indices in by_shape.values():
        try:
            readings = read_marks(torch.cat([pictures[i] for i in indices]), mark, key, fpr)
        except GenforgeError as e:  # too small to read, or of a channel count no data set has
            readings = [{"error": str(e), "marked": False}] * len(indices)
        for i, reading in zip(indices, readings):
            out[i] = reading
    return out


def read_files(paths: list[str | Path], mark_dir: str | Path | Watermark, key: str | None = None,
               fpr: float = DEFAULT_FPR) -> list[dict]:
    """`read_pictures` of image files at their own size (grey or RGB as the watermark's,
    transparency composited onto white); a file that cannot be read gets {"error": why} instead."""
    from .files import read_picture
    mark = load_watermark(mark_dir)
    pictures, unreadable = [], {}
    for i, path in enumerate(paths):
        try:
            pictures.append(read_picture(Path(path), mark.image_shape[0]))
        except GenforgeError as e:
            unreadable[i] = {"error": str(e)}
    readings = iter(read_pictures(pictures, mark, key, fpr))
    return [unreadable[i] if i in unreadable else next(readings) for i in range(len(paths))]


def describe(result: dict) -> str:
    """A reading in words: "watermark KEY (41/48 bits, p = 2e-09)", "no watermark (p = 0.3)",
    or the key read where there was no key to compare with."""
    if "error" in result:
        return f"watermark not read: {result['error']}"
    if result["matches"] is None:
        return f"watermark read {result['key']} (no key to compare with)"
    agree = f"{result['bits_agree']}/{result['bits']} bits, p = {result['p_value']:.2g}"
    return f"watermark {result['matches']} ({agree})" if result["marked"] else f"no watermark ({agree})"
