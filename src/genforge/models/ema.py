"""An exponential moving average of a network's weights (Yazici et al. 2019): sampling
from the average rather than the last step smooths out a GAN's oscillations."""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_copy(module: nn.Module) -> nn.Module:
    """A frozen copy of `module` to hold the average."""
    return copy.deepcopy(module).requires_grad_(False)


@torch.no_grad()
def update_ema(average: nn.Module, module: nn.Module, decay: float, step: int) -> None:
    """Moves `average`'s weights toward `module`'s and copies its buffers.

    The decay warms up as (1 + step) / (10 + step), so early averages are not dragged back
    to the random initialisation. Buffers (BatchNorm's running statistics, spectral norm's
    vectors) are copied rather than averaged: they must match the weights they normalise
    at sampling time, and an average of running statistics is not a running statistic.
    """
    decay = min(decay, (1 + step) / (10 + step))
    for avg, p in zip(average.parameters(), module.parameters(), strict=True):
        avg.lerp_(p, 1 - decay)
    for avg, b in zip(average.buffers(), module.buffers(), strict=True):
        avg.copy_(b)
