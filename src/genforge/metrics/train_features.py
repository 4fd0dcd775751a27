"""Training a data set's feature network (`genforge eval train-features`).

Grayscale 28x28 sets (MNIST, Fashion-MNIST) train exactly as they always have: two stages,
random shifts of up to 2 px. Colour sets at 32x32 or more (emoji) get a deeper network and
augmentations chosen for a small set of drawings (see `colour_augment`); a set with a style
label per image (emoji's vendor) trains a second head on the same features.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import ImageSet, load_dataset
from ..train.batches import epoch_order, steps_per_epoch
from .feature_net import FeatureNet, FeatureNetConfig

COLOUR_WIDTH = 12  # first stage's channels for colour sets: 4 stages 12-24-48-48 keep the weights under 1 MB


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


def round_trip(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images shrunk to `size` (antialiased, as `load_dataset(image_size=size)` does) and grown back:
    what a model trained at that size gives the feature network after upsampling."""
    full = x.shape[-1]
    small = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
    return F.interpolate(small, size=(full, full), mode="bilinear", antialias=True).clamp(0, 1)


def shrink(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 images resized to `size` as `load_dataset(image_size=size)` resizes them (antialiased bilinear)."""
    x = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True)
    return x.round_().clamp_(0, 255).to(torch.uint8)


def colour_augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Augmentations for emoji-like drawings: a shift of up to 1/16 of the side and a scale of
    0.9-1.1 (edges repeated, so the background stays the background), and for half the images
    a round trip through half the resolution, so that 32x32 samples read at 64x64 are images
    the network has seen. No flips: text, arrows, clocks, flags and keycaps are not symmetric,
    and vendors differ in which way their figures face. No colour jitter: colour is much of
    what tells one category, and one vendor, from another."""
    n, _, h, w = x.shape
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 / 16)  # in grid units: 1/16 of the side
    scale = 0.9 + 0.2 * torch.rand(n, generator=generator)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    halve = torch.rand(n, generator=generator) < 0.5
    if halve.any():
        x[halve] = round_trip(x[halve], h // 2)
    return x


def network_config(data: ImageSet) -> FeatureNetConfig:
    """The MNIST layout for 28x28 sets; for 32x32 and up, stages until the map is 4x4 (32: 3, 64: 4),
    widths doubling from COLOUR_WIDTH up to 4x; a style head where the set has styles."""
    c, h, _ = data.shape
    num_styles = len(data.style_names) if data.styles is not None and data.style_names else 0
    if h < 32:
        return FeatureNetConfig(in_channels=c, image_size=h, num_classes=data.num_classes, num_styles=num_styles)
    stages = max(1, int(math.log2(h)) - 2)
    widths = [COLOUR_WIDTH * 2 ** min(i, 2) for i in range(stages)]
    return FeatureNetConfig(in_channels=c, image_size=h, width=COLOUR_WIDTH, num_classes=data.num_classes,
                            widths=widths, num_styles=num_styles)


@torch.inference_mode()
def accuracy(net: FeatureNet, data: ImageSet, batch_size: int = 1000, head: str = "class") -> float:
    """Share of `data` that the class head (head="class") or the style head ("style") gets right."""
    net.eval()
    targets = data.labels if head == "class" else data.styles
    correct = 0
    for i in range(0, len(data), batch_size):
        x = data.images[i:i + batch_size].float().div(255)
        if x.shape[-1] < net.config.image_size:  # a smaller copy of the set: read upsampled, as evaluation does
            x = F.interpolate(x, size=(net.config.image_size,) * 2, mode="bilinear", antialias=True)
        _, logits, style_logits = net.heads(x)
        chosen = logits if head == "class" else style_logits
        correct += int((chosen.argmax(1) == targets[i:i + batch_size]).sum())
    return correct / len(data)


def train_feature_net(dataset: str, epochs: float = 8, seed: int = 0, batch_size: int = 128,
                      lr: float = 3e-3, data_dir: str | None = None, progress: bool = True,
                      train_data: ImageSet | None = None, test_data: ImageSet | None = None
                      ) -> tuple[FeatureNet, dict]:
    """Trains the classifier on the train split; returns it with its card (test accuracy included).
    `train_data`/`test_data` replace the data set's splits (tests use small synthetic sets)."""
    train = train_data or load_dataset(dataset, "train", data_dir=data_dir)
    test = test_data or load_dataset(dataset, "test", data_dir=data_dir)
    torch.manual_seed(seed)
    config = network_config(train)
    colour = config.widths is not None
    net = FeatureNet(config)
    per_epoch = steps_per_epoch(len(train), batch_size)
    total = math.ceil(epochs * per_epoch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    # One-cycle: a short warm-up then a cosine decay; reaches high accuracy in few epochs.
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.15)
    shift_rng = torch.Generator().manual_seed(seed + 1)
    net.train()
    bar = tqdm(range(total), disable=not progress, desc=f"feature net on {dataset}", unit="step")
    order = None
    for step in bar:
        epoch, i = divmod(step, per_epoch)
        if i == 0:
            order = epoch_order(len(train), seed, epoch)  # the same batches as train.batches.batches
        idx = order[i * batch_size:(i + 1) * batch_size]
        x, y = train.images[idx].float().div_(255), train.labels[idx]
        x = colour_augment(x, shift_rng) if colour else random_shift(x, 2, shift_rng)
        # No label smoothing: it caps the classifier's confidence, and the classifier score
        # (exp E KL(p(y|x) || p(y))) of real images would then sit well below its maximum.
        _, logits, style_logits = net.heads(x)
        loss = F.cross_entropy(logits, y)
        if style_logits is not None:
            loss = loss + F.cross_entropy(style_logits, train.styles[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    net.eval()
    card = {
        "dataset": dataset,
        "architecture": _architecture(config),
        "features": f"the {config.feature_dim}-d ReLU layer before the head",
        "training": {"epochs": epochs, "batch_size": batch_size, "optimizer": "AdamW", "lr": lr,
                     "weight_decay": 5e-4, "schedule": "one-cycle",
                     "augmentation": ("shift up to 1/16 of the side, scale 0.9-1.1 (edges repeated), half the "
                                      "images through half resolution and back; no flips, no colour jitter"
                                      if colour else "random shift up to 2 px"),
                     "seed": seed},
        "command": f"genforge eval train-features --dataset {dataset} --epochs {epochs:g} --seed {seed}",
        "test_accuracy": round(accuracy(net, test), 5),
    }
    if config.num_styles:
        card["styles"] = list(train.style_names)
        card["test_style_accuracy"] = round(accuracy(net, test, head="style"), 5)
    if colour:  # the same test images at half size, read upsampled: how the network sees half-size samples
        half = dataclasses.replace(test, images=shrink(test.images, config.image_size // 2))
        card[f"test_accuracy_at_{half.shape[-1]}"] = round(accuracy(net, half), 5)
        if config.num_styles:
            card[f"test_style_accuracy_at_{half.shape[-1]}"] = round(accuracy(net, half, head="style"), 5)
    card["torch"] = torch.__version__
    return net, card


def _architecture(config: FeatureNetConfig) -> str:
    stages = config.stage_widths
    if config.widths is None:
        return "2x(conv3-BN-ReLU x2, maxpool) -> dropout -> linear 128 (features) -> dropout -> linear"
    heads = "class head" + (" and style head (linear each)" if config.num_styles else " (linear)")
    return (f"{len(stages)}x(conv3-BN-ReLU x2, maxpool), widths {'-'.join(map(str, stages))} -> dropout -> "
            f"linear {config.feature_dim} (features) -> dropout -> {heads}")
