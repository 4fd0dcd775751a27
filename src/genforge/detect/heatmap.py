"""Edit maps shown on the image they describe: edited regions in red.

A grey picture is shown in grey under a red tint. A colour picture keeps its colours (an edit
often shows as a colour that is off, which a grey rendering would hide), tinted red where the map
is high; since red on a red or orange picture is easy to miss, the region the map calls edited
(0.5 and above) is also outlined in blue, a colour that differs from the tint on any picture.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

MIN_SIDE = 112  # small images (28x28 digits, 32x32 emoji) are enlarged so the map can be seen
RED = np.array([255.0, 0.0, 0.0])
OUTLINE = np.array([0.0, 90.0, 255.0])


def outline(region: np.ndarray) -> np.ndarray:
    """The pixels of a boolean (H, W) region that touch a pixel outside it (4-neighbours)."""
    padded = np.pad(region, 1, mode="edge")
    inside = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return region & ~inside


def overlay(original: np.ndarray, edit_map: torch.Tensor, strength: float = 0.6) -> np.ndarray:
    """uint8 (H', W', 3) picture of `original` (uint8 (H, W, C), C 1 or 3) tinted red where the edit
    map (1, h, w) in [0, 1] is high, enlarged by a whole factor if it is smaller than MIN_SIDE; a
    colour picture keeps its colours and gets a blue outline around the map's 0.5 level."""
    scale = max(1, math.ceil(MIN_SIDE / min(original.shape[:2])))
    colour = original.shape[-1] == 3 and not (original[..., :1] == original).all()
    picture = original.astype(np.float64) if colour else \
        np.repeat(original.mean(-1, keepdims=True) if original.shape[-1] == 3 else original[..., :1], 3, -1)
    picture = np.repeat(np.repeat(picture.astype(np.float64), scale, 0), scale, 1)
    h, w = picture.shape[:2]
    heat = F.interpolate(edit_map[None].float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]
    heat = heat.clamp(0, 1).numpy()
    alpha = strength * heat[..., None]
    picture = (1 - alpha) * picture + alpha * RED
    if colour:
        picture[outline(heat >= 0.5)] = OUTLINE
    return picture.round().clip(0, 255).astype(np.uint8)
