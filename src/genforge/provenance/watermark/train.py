"""Training an embedder and an extractor together, against the distortions of distortions.py.

Each step marks a batch of real images with random bits, rounds the marked images to 8-bit
pixels, splits the batch into one group per training distortion (`distortions`), and asks the
extractor to read the bits of each group. The loss is the bits' binary cross-entropy, plus
`image_weight` times the squared change to the pixels (`image_distance`; off until the extractor
reads the bits, then growing over `warmup` of the budget: `_image_term_share`), plus
`null_weight` times the squared logits the extractor gives the same images unmarked, so an
unmarked image reads as close to a coin toss as it can (what the binomial p-value assumes). The
distortions start gentle and reach their full strength after `warmup` of the budget; the learning
rate falls along a cosine to the end.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ...data import load_dataset
from ...errors import GenforgeError
from .bits import check_key, random_key
from .distortions import TRAINING, apply_training, quantise
from .evaluate import measure
from .nets import Embedder, Extractor, MarkConfig
from .store import load_watermark, save_watermark

DEFAULT_MINUTES = 30.0  # `genforge watermark train` without --minutes or --steps


def default_mark(image_shape: tuple[int, int, int]) -> dict:
    """The bits and network sizes a watermark gets unless told otherwise: 32 bits at 28x28, 48
    at larger sizes (the issue's targets), and at 64x64 a coarser working grid (1/4 of the size)."""
    _, h, w = image_shape
    return {"bits": 32 if h * w <= 28 * 28 else 48, "scale": 4 if min(h, w) >= 64 else 2}


def default_image_weight(channels: int) -> float:
    """10 for grey images, 60 for colour, from short trainings (bench/watermark_bench.py's notes):
    colour marks had robustness to spare but a visible pattern at 20, while grey ones (black
    backgrounds that hide little) lost too much to Gaussian noise at 20."""
    return 10.0 if channels == 1 else 60.0


@dataclass
class MarkTraining:
    """How a watermark is trained (the networks' sizes are MarkConfig's)."""

    batch_size: int = 64
    lr: float = 1e-3
    image_weight: float | None = None  # weight of the mean squared pixel change (None: 10 grey, 60 colour)
    null_weight: float = 0.05  # weight of the squared logits of unmarked images
    chroma_weight: float = 4.0  # colour images: a change of colour (Cb, Cr) counts this many times one of brightness
    warmup: float = 0.2  # share of the budget over which the distortions grow to full strength
    distortions: list[str] = field(default_factory=lambda: list(TRAINING))
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = [d for d in self.distortions if d not in TRAINING]
        if unknown or not self.distortions:
            raise GenforgeError(f"unknown watermark distortion {unknown[0] if unknown else '(none given)'}; "
                                f"choose from {', '.join(TRAINING)}")
        if self.batch_size < len(self.distortions):
            raise GenforgeError(f"a watermark's batch size must be at least the number of distortions "
                                f"({len(self.distortions)}), got {self.batch_size}")
        if not (self.lr > 0 and min(self.image_weight or 0, self.null_weight, self.chroma_weight) >= 0
                and 0 <= self.warmup < 1):
            raise GenforgeError("a watermark's lr must be positive, image_weight, null_weight and chroma_weight "
                                "at least 0 and warmup in [0, 1)")


def image_distance(marked: torch.Tensor, original: torch.Tensor, chroma_weight: float = 2.0) -> torch.Tensor:
    """The mean squared change; for colour images the squared change of brightness (Y) plus
    `chroma_weight` times that of colour (Cb, Cr): the eye sees a coloured pattern on a flat area
    sooner than a faint light-and-dark one. (A grey change scores the same either way.)"""
    diff = marked - original
    if diff.shape[1] != 3:
        return diff.pow(2).mean()
    r, g, b = diff[:, 0], diff[:, 1], diff[:, 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb, cr = -0.168736 * r - 0.331264 * g + 0.5 * b, 0.5 * r - 0.418688 * g - 0.081312 * b
    return y.pow(2).mean() + chroma_weight * (cb.pow(2).mean() + cr.pow(2).mean())


def _image_term_share(share: float, reading: float, step: float) -> float:
    """The image term comes in once the extractor reads the bits (a running mean of 90% right
    or more), growing by `step` (the budget just spent over the warm-up), and backs off while
    the reading falls under 75%: the mark is made faint only as fast as the reader keeps up.
    Gating on the reading rather than on time is what keeps a slow machine (fewer steps in the
    same minutes) from silencing the embedder before it has learnt anything."""
    if reading >= 0.9:
        return min(1.0, share + step)
    if reading < 0.75:
        return max(0.0, share - step)
    return share


def _budget_fraction(step: int, steps: int | None, started: float, minutes: float | None) -> float:
    done = [step / steps] if steps else []
    if minutes:
        done.append((time.perf_counter() - started) / (60 * minutes))
    return min(1.0, max(done))


def train_watermark(dataset: str, out: str | Path, bits: int | None = None, image_size: int | None = None,
                    minutes: float | None = None, steps: int | None = None, data_dir: str | None = None,
                    key: str | None = None, progress=None, mark: dict | None = None, **training) -> Path:
    """Trains a watermark for the images of `dataset` and writes it to `out`; returns `out`.

    `bits` (K): default 32 at 28x28 and 48 at larger sizes (default_mark). Stops after `steps`
    steps or `minutes` minutes, whichever comes first (one of them is needed).
    `mark`: MarkConfig fields other than the image shape and bits (width, strength, ...);
    `training`: MarkTraining fields (batch_size, lr, image_weight, ...). `key`: the watermark's
    own key, used where none is given (default: a random one). `progress(step, fraction, losses)`
    is called every 50 steps."""
    if not steps and not minutes:
        raise GenforgeError("give a training budget: steps or minutes")
    settings = MarkTraining(**training)
    data = load_dataset(dataset, "train", data_dir=data_dir, image_size=image_size)
    if settings.image_weight is None:
        settings.image_weight = default_image_weight(data.shape[0])
    defaults = default_mark(data.shape)
    bits = bits or defaults.pop("bits")
    defaults.pop("bits", None)
    config = MarkConfig(image_shape=data.shape, bits=bits, **{**defaults, **(mark or {})})
    own_key = check_key(key, bits) if key is not None else random_key(bits)
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    embedder, extractor = Embedder(config), Extractor(config)
    params = list(embedder.parameters()) + list(extractor.parameters())
    opt = torch.optim.Adam(params, lr=settings.lr)
    images = data.images
    groups = len(settings.distortions)
    started, step, fraction = time.perf_counter(), 0, 0.0
    reading, quiet = 0.5, 0.0  # running mean of the batch bit accuracy; share of the image term in force
    embedder.train(), extractor.train()
    while fraction < 1.0:
        index = torch.randint(len(images), (settings.batch_size,), generator=generator)
        x = images[index].float().div(255)
        message = torch.randint(2, (len(x), bits), generator=generator).float()
        marked = (x + embedder(x, message)).clamp(0, 1)
        image_loss = image_distance(marked, x, settings.chroma_weight)
        strength = min(1.0, fraction / settings.warmup) if settings.warmup else 1.0
        sent = quantise(marked)
        bit_loss, right = 0.0, 0
        for name, part, target in zip(settings.distortions, sent.tensor_split(groups), message.tensor_split(groups)):
            logits = extractor(apply_training(part, name, strength, generator))
            bit_loss = bit_loss + F.binary_cross_entropy_with_logits(logits, target) * len(part) / len(x)
            right += int(((logits.detach() > 0) == target.bool()).sum())
        reading = 0.9 * reading + 0.1 * right / message.numel()
        null = extractor(quantise(x[: max(1, len(x) // 4)])).pow(2).mean()
        loss = bit_loss + quiet * settings.image_weight * image_loss + settings.null_weight * null
        for group in opt.param_groups:
            group["lr"] = settings.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * fraction)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if not math.isfinite(float(loss.detach())):
            raise GenforgeError(f"watermark training diverged at step {step} (loss {float(loss.detach())}); "
                                "train again with a lower --lr")
        previous, fraction = fraction, _budget_fraction(step, steps, started, minutes)
        quiet = _image_term_share(quiet, reading, (fraction - previous) / settings.warmup if settings.warmup else 1.0)
        if progress is not None and (step % 50 == 0 or fraction >= 1.0):
            progress(step, fraction, {"bits": float(bit_loss.detach()), "read": reading,
                                      "image": float(image_loss.detach()), "null": float(null.detach())})
    embedder.eval(), extractor.eval()
    info = {"dataset": dataset, "training": {**asdict(settings), "steps": step, "minutes": minutes,
                                             "seconds": round(time.perf_counter() - started, 1)}}
    save_watermark(out, embedder, extractor, own_key, info)
    test = load_dataset(dataset, "test", data_dir=data_dir, image_size=image_size).images[:256]
    measured = measure(load_watermark(out), test, seed=settings.seed)
    save_watermark(out, embedder, extractor, own_key, {**info, "measured": measured})
    return Path(out)
