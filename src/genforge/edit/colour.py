"""Colour properties measured on the pixels of a figure: hue, saturation, brightness and area.

Colour data sets such as emoji draw a figure on a plain background (white, where transparency
was composited). Each property is measured on the figure's pixels only, so that the background
neither dilutes the colour nor counts as area:

- figure weight: 0 for a pixel within FIGURE_LOW of the background colour in every channel, 1
  beyond FIGURE_HIGH, linear between (a soft threshold: anti-aliased edges and a decoder's
  slightly grey background count by how far they are from it, not all or nothing);
- area: the figure weight's mean over the image, the share of the image the figure covers, in [0, 1];
- saturation and brightness: HSV's S = (max - min) / max and V = max of the channels, averaged
  over the figure (weighted by the figure weight), in [0, 1];
- hue: HSV's H as a fraction of the colour circle (0 red, 1/3 green, 2/3 blue), averaged as
  angles are: the circular mean of the figure's hues weighted by figure weight times saturation,
  so greys (whose hue means nothing) do not pull it. `hue_vector` keeps that mean as a vector
  (its length the weighted mean saturation times how concentrated the hues are): a change of
  hue is a rotation of it, which is how the hue edit asks for one.

Units of a change: hue in fractions of the circle (+0.2 is 72 degrees toward green from red),
wrapped to [-0.5, 0.5); the others in their own [0, 1] scale (area=-0.3: the figure covers
30 points less of the image).
"""

from __future__ import annotations

import math

import torch

FIGURE_LOW, FIGURE_HIGH = 0.05, 0.15  # distance from the background (max over channels), see above
WHITE = (1.0, 1.0, 1.0)
EPS = 1e-6


def _rgb(x: torch.Tensor) -> torch.Tensor:
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def figure_weight(x: torch.Tensor, background=WHITE) -> torch.Tensor:
    """How much each pixel (N, H, W) belongs to the figure rather than the background, in [0, 1]."""
    bg = torch.as_tensor(background, dtype=x.dtype).view(1, -1, 1, 1)
    distance = (x - bg).abs().amax(1)
    return ((distance - FIGURE_LOW) / (FIGURE_HIGH - FIGURE_LOW)).clamp(0, 1)


def hsv(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hue (fraction of the circle), saturation and value, each (N, H, W), of images in [0, 1]."""
    x = _rgb(x).clamp(0, 1)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    v, _ = x.max(1)
    c = v - x.min(1).values
    s = torch.where(v > EPS, c / v.clamp(min=EPS), torch.zeros_like(v))
    safe = c.clamp(min=EPS)
    h = torch.where(v == r, ((g - b) / safe) % 6, torch.where(v == g, (b - r) / safe + 2, (r - g) / safe + 4)) / 6
    return torch.where(c > EPS, h, torch.zeros_like(h)), s, v


def _figure_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    # an image without figure pixels falls back to the plain mean (the weights' EPS)
    w = weight + EPS
    return (values * w).sum((1, 2)) / w.sum((1, 2))


def area(x: torch.Tensor, background=WHITE) -> torch.Tensor:
    """Share (N,) of the image that the figure covers, in [0, 1]."""
    return figure_weight(x, background).mean((1, 2))


def saturation(x: torch.Tensor, background=WHITE) -> torch.Tensor:
    """Mean HSV saturation (N,) of the figure's pixels, in [0, 1]."""
    return _figure_mean(hsv(x)[1], figure_weight(x, background))


def brightness(x: torch.Tensor, background=WHITE) -> torch.Tensor:
    """Mean HSV value (N,) (the brightest channel) of the figure's pixels, in [0, 1]."""
    return _figure_mean(hsv(x)[2], figure_weight(x, background))


def hue_vector(x: torch.Tensor, background=WHITE) -> torch.Tensor:
    """(N, 2): the figure's mean of (cos, sin) of the hue angle weighted by saturation."""
    h, s, _ = hsv(x)
    w = figure_weight(x, background)
    angle = 2 * math.pi * h
    return torch.stack([_figure_mean(s * torch.cos(angle), w), _figure_mean(s * torch.sin(angle), w)], 1)


def hue(x: torch.Tensor, background=WHITE) -> torch.Tensor:
    """Circular mean hue (N,) of the figure, a fraction of the colour circle in [0, 1)."""
    u = hue_vector(x, background)
    return (torch.atan2(u[:, 1], u[:, 0]) / (2 * math.pi)) % 1.0


def hue_difference(after: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """after - before on the circle, wrapped to [-0.5, 0.5)."""
    return (after - before + 0.5) % 1.0 - 0.5


def rotate(u: torch.Tensor, turns: torch.Tensor | float) -> torch.Tensor:
    """Hue vectors (N, 2) rotated by `turns` fractions of the circle."""
    a = 2 * math.pi * torch.as_tensor(turns, dtype=u.dtype)
    cos, sin = torch.cos(a), torch.sin(a)
    return torch.stack([cos * u[:, 0] - sin * u[:, 1], sin * u[:, 0] + cos * u[:, 1]], 1)
