"""Mixed precision: bfloat16 autocast where the hardware runs it fast.

On CPUs with AMX tiles (Intel Xeon of the 4th generation and later) oneDNN runs bfloat16
convolutions and matrix products on them: genforge's models train 1.4-1.5x the steps in the
same minutes on 2 cores, with the same loss per step, and the 15-minute Fashion-MNIST cvae-gan
came out better for it (BENCHMARKS.md, "Training in bfloat16"). Elsewhere bfloat16 is emulated
and slower than float32, so `auto` (the default) picks it only on CPUs with AMX. On CUDA it
stays float32: on an H100 bfloat16 autocast trained these small models at 0.70-0.91x the float32
speed (their small batches leave the GPU waiting on kernel launches, and autocast adds casts).
`bf16` asks for it anywhere. Weights, optimiser states and
the losses' reductions stay float32: autocast runs the convolutions and matrix products in
bfloat16, nothing else. Sampling and evaluation stay float32.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

PRECISIONS = ("auto", "fp32", "bf16")
DEFAULT_PRECISION = "auto"


def cpu_has_amx() -> bool:
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)  # private, so guarded
    try:
        return bool(check()) if check else False
    except RuntimeError:
        return False


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """`fp32` or `bf16`: what `precision` means on `device`."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    # CUDA stays float32 under `auto`: bfloat16 measured slower there (module docstring); `bf16` asks.
    return "bf16" if torch.device(device).type == "cpu" and cpu_has_amx() else "fp32"


def autocast(precision: str, device: str | torch.device = "cpu"):
    """A context that runs what happens inside it at `precision` (`fp32` or `bf16`, resolved)."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
