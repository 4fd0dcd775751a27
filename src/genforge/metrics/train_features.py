"""Training a data set's feature network (`genforge eval train-features`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import ImageSet, load_dataset
from ..train.batches import batches, steps_per_epoch
from .feature_net import FeatureNet, FeatureNetConfig


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Moves each image by up to `max_shift` pixels in x and y, zero-filled: the one
    augmentation that helps a digit classifier and never changes a label."""
    n, _, h, w = x.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator).float()
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = shifts[:, 0] * 2 / w
    theta[:, 1, 2] = shifts[:, 1] * 2 / h
    grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


@torch.inference_mode()
def accuracy(net: FeatureNet, data: ImageSet, batch_size: int = 1000) -> float:
    net.eval()
    correct = 0
    for i in range(0, len(data), batch_size):
        x = data.images[i:i + batch_size].float().div(255)
        correct += int((net(x).argmax(1) == data.labels[i:i + batch_size]).sum())
    return correct / len(data)


def train_feature_net(dataset: str, epochs: float = 8, seed: int = 0, batch_size: int = 128,
                      lr: float = 3e-3, data_dir: str | None = None, progress: bool = True,
                      train_data: ImageSet | None = None) -> tuple[FeatureNet, dict]:
    """Trains the classifier on the train split; returns it with its card (test accuracy included)."""
    train = train_data or load_dataset(dataset, "train", data_dir=data_dir)
    test = load_dataset(dataset, "test", data_dir=data_dir)
    c, h, _ = train.shape
    torch.manual_seed(seed)
    net = FeatureNet(FeatureNetConfig(in_channels=c, image_size=h, num_classes=train.num_classes))
    total = math.ceil(epochs * steps_per_epoch(len(train), batch_size))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    # One-cycle: a short warm-up then a cosine decay; reaches high accuracy in few epochs.
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.15)
    shift_rng = torch.Generator().manual_seed(seed + 1)
    net.train()
    stream = batches(train, batch_size, seed)
    bar = tqdm(range(total), disable=not progress, desc=f"feature net on {dataset}", unit="step")
    for step in bar:
        x, y = next(stream)
        # No label smoothing: it caps the classifier's confidence, and the classifier score
        # (exp E KL(p(y|x) || p(y))) of real images would then sit well below its maximum.
        loss = F.cross_entropy(net(random_shift(x, 2, shift_rng)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    test_accuracy = accuracy(net, test)
    card = {
        "dataset": dataset,
        "architecture": "2x(conv3-BN-ReLU x2, maxpool) -> dropout -> linear 128 (features) -> dropout -> linear",
        "features": "the 128-d ReLU layer before the head",
        "training": {"epochs": epochs, "batch_size": batch_size, "optimizer": "AdamW", "lr": lr,
                     "weight_decay": 5e-4, "schedule": "one-cycle", "augmentation": "random shift up to 2 px",
                     "seed": seed},
        "command": f"genforge eval train-features --dataset {dataset} --epochs {epochs:g} --seed {seed}",
        "test_accuracy": round(test_accuracy, 5),
        "torch": torch.__version__,
    }
    return net.eval(), card
