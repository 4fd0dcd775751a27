"""Training a detector: real images against genforge's own fakes, whose masks it knows.

Every batch is half real, half fake (samples and pastes of every model and self-blended real
images, mixed: fakes.py), and goes through the same random augmentation. Two losses: binary
cross-entropy of the image logit (real 0, fake 1), and per-pixel binary cross-entropy of the
edit map (all zeros for a real image, all ones for a sample, the pixels a paste changed for a
paste). The pixels of partly edited images weigh `edit_weight` times more: they are a small
share of all pixels, yet they are the only ones that teach the map where an edit ends
(BENCHMARKS.md: pixel AUC on pastes 0.81 at 1x, 0.87 at 10x). A tenth of the images is held out
and judged at the end; the card records the sources, threshold and those numbers.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..config_check import SEED, Checked, Device, Flag, NameList, Number, OneOf, Whole
from ..data import ImageSet
from ..errors import GenforgeError
from ..train.precision import DEFAULT_PRECISION, PRECISIONS, autocast, resolve_precision
from .augment import AUGMENTATIONS, augment, parse_augmentations
from .detector import Detector, DetectorConfig, save_detector
from .evaluate import evaluate_detector
from .fakes import EDIT_TRUTHS, FakeSet, make_fakes
from .softness import SOFT_QUANTILE, sharpness_floor


@dataclass(frozen=True)
class DetectTrainConfig(Checked):
    steps: int | None = None
    minutes: float | None = None
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 16
    fakes_per_source: int = 2000  # of each kind (sample, paste) per run directory
    mask_weight: float = 1.0
    edit_weight: float = 10.0  # pixel-loss weight of partly edited images (pastes) against whole ones
    edit_truth: str = "changed"  # a paste's mask: the pixels it changed, or the region pasted (fakes.py)
    augment_p: float = 0.25  # the share of a batch each augmentation hits
    augmentations: str = ",".join(AUGMENTATIONS)  # which of augment.AUGMENTATIONS training uses
    self_blend: bool = True  # also real images with a region pasted from a restyled copy of themselves (fakes.py)
    tone_channels: bool = True  # the pixel branch also sees log-stretched dark and bright levels (detector.py)
    threshold: float = 0.5  # the verdict's cut; training is class-balanced, so 0.5 is even odds
    precision: str = DEFAULT_PRECISION  # fp32, bf16 or auto (train/precision.py)
    device: str = "cpu"  # where the detector trains; the fakes are made on the CPU
    seed: int = 0

    label = "detector training config"
    RULES = {"steps": Whole(min=1, optional=True), "minutes": Number(gt=0, optional=True),
             # half real, half fake: at least one of each
             "batch_size": Whole(min=2), "lr": Number(gt=0), "width": Whole(min=1),
             "fakes_per_source": Whole(min=1), "mask_weight": Number(ge=0), "edit_weight": Number(gt=0),
             "edit_truth": OneOf(*EDIT_TRUTHS), "augment_p": Number(ge=0, le=1),
             "augmentations": NameList(*AUGMENTATIONS), "self_blend": Flag(), "tone_channels": Flag(),
             "threshold": Number(ge=0, le=1), "precision": OneOf(*PRECISIONS), "device": Device(), "seed": SEED}


def _split(n: int, generator: torch.Generator, held_out: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    cut = max(1, round(n * held_out))
    return order[cut:], order[:cut]


def _batch(real: torch.Tensor, fakes: FakeSet, size: int, generator: torch.Generator, p: float,
           ops: tuple[str, ...]):
    r = torch.randint(len(real), (size // 2,), generator=generator)
    f = torch.randint(len(fakes), (size - size // 2,), generator=generator)
    x = augment(torch.cat([real[r], fakes.images[f]]), generator, p, ops)
    labels = torch.cat([torch.zeros(len(r)), torch.ones(len(f))])
    masks = torch.cat([torch.zeros(len(r), *fakes.masks.shape[1:]), fakes.masks[f]])
    return x, labels, masks


def edit_map_weights(masks: torch.Tensor, config: DetectTrainConfig) -> torch.Tensor:
    """`edit_weight` for every pixel of an image whose mask is neither all 0 nor all 1, else 1."""
    share = masks.mean(dim=(1, 2, 3), keepdim=True)
    partial = (share > 0) & (share < 1)
    return torch.where(partial, config.edit_weight, 1.0).expand_as(masks)


def _lr_factor(step: int, elapsed_s: float, config: DetectTrainConfig) -> float:
    """Cosine decay over whichever budget runs out first."""
    done = max(step / config.steps if config.steps else 0.0,
               elapsed_s / (60 * config.minutes) if config.minutes else 0.0)
    return 0.5 * (1 + math.cos(math.pi * min(done, 1.0)))


def train_detector(real: ImageSet, run_dirs: list[str | Path], out: str | Path | None = None,
                   config: DetectTrainConfig = DetectTrainConfig(), real_spec: str = "",
                   progress: bool = True) -> tuple[Detector, dict]:
    """Trains a detector of real images against the fakes of `run_dirs`; writes it to `out` if given."""
    if config.steps is None and config.minutes is None:
        raise GenforgeError("give a training budget: steps or minutes")
    if not run_dirs:
        raise GenforgeError("give at least one run directory to make fakes from")
    generator = torch.Generator().manual_seed(config.seed)
    fakes = make_fakes(run_dirs, real, config.fakes_per_source, config.seed, config.edit_truth, config.self_blend)
    real_images = real.images.float() / 255
    real_train, real_val = _split(len(real_images), generator)
    fake_train, fake_val = _split(len(fakes), generator)
    train_real, train_fakes = real_images[real_train], fakes.subset(fake_train)
    c, h, _ = real.shape
    torch.manual_seed(config.seed)
    device = torch.device(config.device)
    detector = Detector(DetectorConfig(in_channels=c, image_size=h, width=config.width,
                                       tone_channels=config.tone_channels)).to(device).train()
    optimizer = torch.optim.AdamW(detector.parameters(), lr=config.lr, weight_decay=1e-4)
    precision = resolve_precision(config.precision, device)
    ops = parse_augmentations(config.augmentations)

    by_time = config.steps is None
    bar = tqdm(total=round(60 * config.minutes) if by_time else config.steps, disable=not progress,
               unit="s" if by_time else "step", desc="detector", dynamic_ncols=True)
    step, started = 0, time.perf_counter()
    while True:
        elapsed = time.perf_counter() - started
        if (config.steps and step >= config.steps) or (config.minutes and elapsed >= 60 * config.minutes):
            break
        for group in optimizer.param_groups:
            group["lr"] = config.lr * _lr_factor(step, elapsed, config)
        # Batches are drawn and augmented on the CPU with the seeded generator, so a run is the same
        # on any device; the detector's steps are what a GPU speeds up.
        x, labels, masks = (t.to(device, non_blocking=True) for t in
                            _batch(train_real, train_fakes, config.batch_size, generator, config.augment_p, ops))
        with autocast(precision, device):
            logit, mask_logits = detector(x)
        image_loss = F.binary_cross_entropy_with_logits(logit.float(), labels)
        mask_loss = F.binary_cross_entropy_with_logits(mask_logits.float(), masks,
                                                       weight=edit_map_weights(masks, config))
        loss = image_loss + config.mask_weight * mask_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        bar.update(round(time.perf_counter() - started) - bar.n if by_time else 1)
        bar.set_postfix(image=f"{image_loss.item():.3f}", mask=f"{mask_loss.item():.3f}", refresh=False)
    bar.close()

    detector.eval()
    validation = evaluate_detector(detector, real_images[real_val], fakes.subset(fake_val), perturb=False)
    card = {"threshold": config.threshold,
            "softness": {"sharpness_floor": sharpness_floor(train_real), "quantile": SOFT_QUANTILE},
            "training": {"real": real_spec or real.name, "real_images": len(real_train),
                         "fakes": [str(r) for r in run_dirs], "fake_sources": fakes.names,
                         "fake_images": len(fake_train), "steps": step, "precision_used": precision,
                         "device": str(device),
                         "seconds": round(time.perf_counter() - started, 1), "options": asdict(config)},
            "validation": {"detection": validation["detection"]["none"],
                           "localisation": validation.get("localisation")}}
    if out is not None:
        save_detector(detector, out, card)
        (Path(out) / "report.md").write_text(report(card))
    return detector, card


def report(card: dict) -> str:
    t = card["training"]
    lines = ["# Detector", "",
             f"Trained {t['steps']} steps ({t['seconds']} s on {t.get('device', 'cpu')}, "
             f"{t.get('precision_used', 'fp32')}) on {t['real_images']} real images ({t['real']}) "
             f"against {t['fake_images']} fakes from: {', '.join(t['fakes'])}. "
             f"Verdict threshold {card['threshold']}.", "",
             "Held-out validation (10% of the images, never trained on):", "",
             "| source | AUC | AP |", "|---|---:|---:|"]
    for name, m in card["validation"]["detection"].items():
        lines.append(f"| {name} | {m['auc']:.4f} | {m['ap']:.4f} |")
    loc = card["validation"]["localisation"]
    if loc:
        lines += ["", f"Localisation on pastes: pixel AUC {loc['pixel_auc']:.4f}, pixel F1 {loc['pixel_f1']:.4f}."]
    soft = card.get("softness")
    if soft:
        lines += ["", f"Images softer than {1 - soft['quantile']:.0%} of the real training images (sharpness below "
                  f"{soft['sharpness_floor']:.3f}) are flagged when judged: blur and resizing hide what the "
                  "detector reads."]
    return "\n".join(lines) + "\n"
