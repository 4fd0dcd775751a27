"""Edit maps shown on the image they describe: the picture in grey, edited regions in red."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

MIN_SIDE = 112  # small images (28x28 digits) are enlarged so the map can be seen


def overlay(original: np.ndarray, edit_map: torch.Tensor, strength: float = 0.6) -> np.ndarray:
    """uint8 (H', W', 3) picture of `original` (uint8 (H, W, C)) tinted red where the edit map
    (1, h, w) in [0, 1] is high, enlarged by a whole factor if it is smaller than MIN_SIDE."""
    scale = max(1, math.ceil(MIN_SIDE / min(original.shape[:2])))
    grey = original.mean(-1) if original.shape[-1] == 3 else original[..., 0].astype(np.float64)
    grey = np.repeat(np.repeat(grey, scale, 0), scale, 1)
    h, w = grey.shape
    heat = F.interpolate(edit_map[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    alpha = strength * heat.clamp(0, 1).numpy()[..., None]
    red = np.array([255.0, 0.0, 0.0])
    picture = (1 - alpha) * grey[..., None] + alpha * red
    return picture.round().clip(0, 255).astype(np.uint8)
