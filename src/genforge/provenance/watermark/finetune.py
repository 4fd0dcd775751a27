"""A key in the model itself (the Stable Signature idea, Fernandez et al. 2023).

Marking images after they are made can be skipped by whoever runs the model. Instead, a copy of
a trained model's generator (a GAN's sampling generator, an autoencoder's decoder) is fine-tuned
so that what it samples already carries a key, read by the watermark's extractor; the extractor
stays frozen. Two losses pull against each other: the key's binary cross-entropy on the
extractor's reading of the samples (after the watermark's training distortions, so the key
survives them), and `keep_weight` times the mean squared difference between the samples and
those of the untouched model from the same latent codes, so the samples stay what they were.

Which parameters are tuned is found by asking autograd: those that a sample's pixels depend on.
The model stays in eval mode (BatchNorm keeps its statistics), the codes come from the run's
own latent prior (what `sample` draws), and the new run directory holds the new weights, the
original's config and prior, and a `watermark` entry in config.json (the key, the watermark
directory, the bit accuracy before and after); it loads with `genforge.load` like any run.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from ...errors import GenforgeError, RunError
from ...train import RunDir
from ...train.checkpoint import save_weights
from .bits import check_key, key_to_bits
from .distortions import TRAINING, apply_training, quantise
from .read import DEFAULT_FPR, read_bits, threshold
from .store import load_watermark
from .train import image_distance

COPIED = ("config.json", "prior.safetensors", "prior.json", "metrics.jsonl", "evals.jsonl", "events.jsonl")
MEASURE_N = 256  # samples the bit accuracy is measured on, from codes fine-tuning never saw
MEASURE_SEED = 2 ** 40 + 17  # tuning draws its codes with seeds seed * 1_000_000 + step, far below


def _tuned_parameters(module: torch.nn.Module, z: torch.Tensor, labels) -> list[torch.nn.Parameter]:
    """The parameters the samples depend on (a generator's or decoder's, not an encoder's or critic's)."""
    module.requires_grad_(True)
    module.zero_grad(set_to_none=True)
    module.generate(z, labels).sum().backward()
    found = [p for p in module.parameters() if p.grad is not None]
    module.zero_grad(set_to_none=True)
    for p in module.parameters():
        p.requires_grad_(any(p is q for q in found))
    return found


def key_accuracy(model, mark, key: str, n: int = MEASURE_N, seed: int = MEASURE_SEED,
                 fpr: float = DEFAULT_FPR) -> dict:
    """How well a model's samples carry `key`: mean bit accuracy and the share read as marked."""
    images = model.sample(n, seed=seed)
    bits = key_to_bits(key, mark.bits).expand(n, -1)
    _, agreed, _ = read_bits(images, mark, bits)
    return {"bit_accuracy": round(float(agreed.float().mean()) / mark.bits, 4),
            "tpr": round(float((agreed >= threshold(mark.bits, fpr)).float().mean()), 4), "samples": n}


def finetune_run(run_dir: str | Path, mark_dir: str | Path, key: str, out: str | Path, steps: int = 2000,
                 batch_size: int = 32, lr: float = 1e-3, keep_weight: float = 300.0, seed: int = 0,
                 progress=None) -> dict:
    """Fine-tunes a copy of the model of `run_dir` so its samples carry `key` for the watermark of
    `mark_dir`; writes the new run to `out` and returns what was measured on 256 samples from codes
    the tuning never drew: bit accuracy and true-positive rate before and after (`before`,
    `after`), and how far the new samples are from the old ones (`change`: the mean squared
    difference, colour weighted as in training; `psnr_to_original_db`)."""
    from ... import api
    mark = load_watermark(mark_dir)
    key = check_key(key, mark.bits)
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise RunError(f"{out} exists and is not empty; give a new directory for the watermarked run")
    if steps < 1 or batch_size < 1 or not lr > 0 or keep_weight < 0:
        raise GenforgeError("fine-tuning needs steps and batch size of at least 1, a positive lr and "
                            "keep_weight of at least 0")
    model = api.load(run_dir)
    if tuple(model.image_shape) != tuple(mark.image_shape):
        c, h, w = mark.image_shape
        mc, mh, mw = model.image_shape
        raise GenforgeError(f"the watermark marks {c}x{h}x{w} images but the model makes {mc}x{mh}x{mw}; "
                            "train a watermark on the model's data set and size")
    before = key_accuracy(model, mark, key)
    reference = model.sample(MEASURE_N, seed=MEASURE_SEED)
    module = model.module
    frozen = copy.deepcopy(module).eval().requires_grad_(False)
    mark.extractor.requires_grad_(False)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    z, labels = model.draw(2, seed=seed)
    params = _tuned_parameters(module, z, labels)
    if not params:
        raise GenforgeError(f"model {model.name!r} has no parameters its samples depend on to fine-tune")
    opt = torch.optim.Adam(params, lr=lr)
    target = key_to_bits(key, mark.bits)
    distortions = list(TRAINING)
    started = time.perf_counter()
    for step in range(steps):
        z, labels = model.draw(batch_size, seed=seed * 1_000_000 + step)
        z = z.to(module.device)
        labels = labels.to(module.device) if labels is not None else None
        images = module.generate(z, labels)
        with torch.no_grad():
            original = frozen.generate(z, labels)
        keep = image_distance(images, original)
        sent = quantise(images)
        name = distortions[step % len(distortions)]
        logits = mark.extractor(apply_training(sent, name, min(1.0, 2 * step / steps), generator))
        key_loss = F.binary_cross_entropy_with_logits(logits, target.to(logits).expand_as(logits))
        loss = key_loss + keep_weight * keep
        for group in opt.param_groups:
            group["lr"] = lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if not math.isfinite(float(loss.detach())):
            raise GenforgeError(f"watermark fine-tuning diverged at step {step + 1}; try a lower --lr")
        if progress is not None and ((step + 1) % 50 == 0 or step + 1 == steps):
            progress(step + 1, (step + 1) / steps, {"key": float(key_loss.detach()), "keep": float(keep.detach())})
    module.requires_grad_(False).eval()
    after = key_accuracy(model, mark, key)
    change = float(image_distance(model.sample(MEASURE_N, seed=MEASURE_SEED), reference))
    result = {"key": key, "mark": str(Path(mark.path).resolve()) if mark.path else None, "steps": steps,
              "batch_size": batch_size, "lr": lr, "keep_weight": keep_weight, "seed": seed,
              "seconds": round(time.perf_counter() - started, 1), "before": before, "after": after,
              "change": round(change, 6),
              "psnr_to_original_db": round(-10 * math.log10(max(change, 1e-12)), 2)}
    _write_run(RunDir(run_dir), out, module, result)
    return result


def _write_run(source: RunDir, out: Path, module: torch.nn.Module, result: dict) -> None:
    """The new run directory: the source's config (with the `watermark` entry), prior and logs,
    and the fine-tuned weights; no training checkpoint (it is not a run to resume)."""
    out.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        if (source.path / name).exists():
            shutil.copy2(source.path / name, out / name)
    config = json.loads((out / "config.json").read_text())
    config["watermark"] = {**result, "finetuned_from": str(source.path.resolve())}
    RunDir(out).write_config(config)
    save_weights(RunDir(out).weights, module, {"watermark_key": result["key"]})
