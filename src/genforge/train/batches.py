"""Mini-batches drawn from an in-memory ImageSet, as a pure function of the step number.

Epoch e is shuffled with a generator seeded by (seed, e), so step s always sees the same
batch: resuming at step s needs no saved sampler state and repeats no data.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ..data import ImageSet


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    # The last partial batch is dropped: BatchNorm and GAN losses dislike tiny batches.
    return max(1, n_images // batch_size)


def epoch_order(n_images: int, seed: int, epoch: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n_images, generator=g)


def batches(data: ImageSet, batch_size: int, seed: int, start_step: int = 0,
            device: torch.device | str = "cpu") -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Endless (x, y) batches from `start_step` on: x float in [0, 1] on `device`, y labels or None."""
    n = len(data)
    if batch_size > n:
        raise ValueError(f"batch size {batch_size} is larger than the data set ({n} images)")
    per_epoch = steps_per_epoch(n, batch_size)
    images = data.images.to(device)
    labels = data.labels.to(device) if data.labels is not None else None
    epoch, pos = divmod(start_step, per_epoch)
    while True:
        order = epoch_order(n, seed, epoch).to(device)
        for i in range(pos, per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            x = images[idx].float().div_(255)
            yield x, (labels[idx] if labels is not None else None)
        epoch, pos = epoch + 1, 0
