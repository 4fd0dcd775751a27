"""Animated GIFs: an interpolation or traversal played as a film, with Pillow."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from PIL import Image

from ..report.grid import make_grid


def save_gif(frames: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 4,
             frame_ms: int = 120) -> Path:
    """Saves frames (T, N, C, H, W) in [0, 1] as a looping GIF: frame t tiles the N images at step t,
    and the film plays forward then back so the loop has no jump."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_gif(frames, path, nrow, scale, frame_ms)
    return path


def gif_bytes(frames: torch.Tensor, nrow: int | None = None, scale: int = 4, frame_ms: int = 120) -> bytes:
    """The GIF `save_gif` writes, as bytes (for an answer that holds it rather than a file)."""
    buffer = io.BytesIO()
    _write_gif(frames, buffer, nrow, scale, frame_ms)
    return buffer.getvalue()


def _write_gif(frames, target, nrow, scale, frame_ms) -> None:
    pictures = [make_grid(frame, nrow=nrow, scale=scale) for frame in frames]
    pictures = pictures + pictures[-2:0:-1]
    images = [Image.fromarray(p[..., 0] if p.shape[-1] == 1 else p) for p in pictures]
    images[0].save(target, format="GIF", save_all=True, append_images=images[1:], duration=frame_ms, loop=0)
