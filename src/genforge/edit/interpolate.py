"""Paths between latent codes: linear, and spherical (Shoemake 1985; White 2016).

A normal prior puts almost all its mass near a sphere of radius sqrt(latent_dim); the midpoint
of a straight line between two codes falls inside it, where the generator saw few codes, and
comes out washed-out. The spherical path keeps the norm and stays where the codes live.
"""

from __future__ import annotations

import torch

from ..errors import GenforgeError

METHODS = ("slerp", "lerp")


def lerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Codes (N, T, D) at fractions t (T,) of the straight line from each z0 (N, D) to z1 (N, D)."""
    t = t.view(1, -1, 1)
    return (1 - t) * z0[:, None] + t * z1[:, None]


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Codes (N, T, D) at fractions t (T,) of the great-circle arc from each z0 to z1, the norm
    changing linearly along it; falls back to the straight line where the two are parallel."""
    n0, n1 = z0.norm(dim=1, keepdim=True), z1.norm(dim=1, keepdim=True)
    cos = ((z0 / n0.clamp(min=1e-12)) * (z1 / n1.clamp(min=1e-12))).sum(1, keepdim=True).clamp(-1, 1)
    angle = torch.acos(cos)[:, None]  # (N, 1, 1)
    t = t.view(1, -1, 1)
    parallel = angle.abs() < 1e-4
    sin = torch.sin(angle).where(~parallel, torch.ones_like(angle))
    w0 = torch.where(parallel, 1 - t, torch.sin((1 - t) * angle) / sin)
    w1 = torch.where(parallel, t, torch.sin(t * angle) / sin)
    # The arc between the unit directions, scaled by the interpolated norm.
    u0, u1 = z0 / n0.clamp(min=1e-12), z1 / n1.clamp(min=1e-12)
    norm = (1 - t) * n0[:, None] + t * n1[:, None]
    return (w0 * u0[:, None] + w1 * u1[:, None]) * norm


def interpolate(z0: torch.Tensor, z1: torch.Tensor, steps: int, method: str = "slerp") -> torch.Tensor:
    """`steps` codes (N, steps, D) from z0 to z1, both ends included."""
    if method not in METHODS:
        raise GenforgeError(f"unknown interpolation {method!r}; choose one of: {', '.join(METHODS)}")
    if steps < 2:
        raise GenforgeError(f"an interpolation needs at least 2 steps (its two ends), got {steps}")
    t = torch.linspace(0, 1, steps, dtype=z0.dtype)
    return (slerp if method == "slerp" else lerp)(z0, z1, t)
