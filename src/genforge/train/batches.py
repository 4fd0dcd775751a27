"""Mini-batches drawn from an in-memory ImageSet, as a pure function of the step number.

Epoch e is shuffled with a generator seeded by (seed, e), so step s always sees the same
batch: resuming at step s needs no saved sampler state and repeats no data.

In distributed training every rank computes the same order, cuts the same global batch of
`batch_size x world_size` images from it and takes its own slice (rank r the r-th), so the
ranks together see exactly the batches one process with the global batch would: no sampler
object, nothing to agree on but the seed.
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
            device: torch.device | str = "cpu", rank: int = 0,
            world_size: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """Endless (x, y) batches from `start_step` on: x float in [0, 1] on `device`, y labels or None.
    `batch_size` is this rank's; `rank` of `world_size` picks its slice of each global batch."""
    n, global_batch = len(data), batch_size * world_size
    if global_batch > n:
        raise ValueError(f"batch size {global_batch} is larger than the data set ({n} images)")
    per_epoch = steps_per_epoch(n, global_batch)
    images = data.images.to(device)
    labels = data.labels.to(device) if data.labels is not None else None
    epoch, pos = divmod(start_step, per_epoch)
    while True:
        order = epoch_order(n, seed, epoch).to(device)
        for i in range(pos, per_epoch):
            start = i * global_batch + rank * batch_size
            idx = order[start:start + batch_size]
            x = images[idx].float().div_(255)
            yield x, (labels[idx] if labels is not None else None)
        epoch, pos = epoch + 1, 0
