"""Finding latent codes by optimisation: the code whose image best matches a target.

This is GAN inversion (Zhu et al. 2016; Abdal et al. 2019) and, with a mask of known pixels,
inpainting by latent search (Yeh et al. 2017). Adam moves z only; the model and the feature
network stay fixed. Several random starts run side by side as one batch and each image keeps
the code of the start that ended lowest, because the loss surface of a generator has many
poor local minima. With `candidates`, many random codes are first scored on the target
(one forward pass each, no gradients) and the best of them become the starts: a cheap search
in the generator's range that hands the optimiser better basins than blind draws.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..metrics.feature_net import FeatureNet
from ..models import GenerativeModel


@dataclass
class FitConfig:
    steps: int = 150
    restarts: int = 3
    candidates: int = 64  # random codes scored per image; the best `restarts` start the search (0: no screening)
    lr: float = 0.05
    feature_weight: float = 0.01  # feature MSE is ~100x the pixel MSE on digits; this balances them
    prior_weight: float = 1e-3  # keeps z where the generator was trained (||z||^2 of a normal draw)
    batch_size: int = 256
    seed: int = 0


@dataclass
class Fit:
    z: torch.Tensor  # (N, latent_dim), the best code of each image
    loss: torch.Tensor  # (N,), its final loss
    start_loss: torch.Tensor  # (N,), the loss of that start before optimisation


def fit_latents(model: GenerativeModel, target: torch.Tensor, labels: torch.Tensor | None = None,
                known: torch.Tensor | None = None, init: torch.Tensor | None = None,
                feature_net: FeatureNet | None = None, config: FitConfig = FitConfig(),
                progress: bool = False) -> Fit:
    """Codes z minimising the pixel MSE to `target` (over the `known` pixels, 1 = known) plus,
    with a feature network, the MSE of its features. `init` (N, latent_dim) replaces the first
    random start (an encoder's guess). Runs on the model's device; takes and returns CPU tensors."""
    generator = torch.Generator().manual_seed(config.seed)
    if feature_net is not None and next(feature_net.parameters()).device != model.device:
        feature_net = copy.deepcopy(feature_net).to(model.device)  # the caller's stays where it is
    if known is not None:
        known = known.expand(len(target), *known.shape[1:])
    chunks = range(0, len(target), config.batch_size)
    bar = tqdm(total=len(chunks) * config.steps, desc="latent search", unit="step", delay=1.0,
               disable=not progress, leave=False)
    fits = []
    for i in chunks:
        part = slice(i, i + config.batch_size)
        on_model = [None if t is None else t[part].to(model.device) for t in (target, labels, known, init)]
        fits.append(_fit_batch(model, *on_model, feature_net, config, generator, bar))
    bar.close()
    return Fit(*(torch.cat(t).cpu() for t in zip(*((f.z, f.loss, f.start_loss) for f in fits))))


def masked_mse(x: torch.Tensor, y: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image mean squared error (N,) over the pixels where `known` (N, 1, H, W) is 1 (all without it)."""
    sq = (x - y).pow(2)
    if known is None:
        return sq.flatten(1).mean(1)
    known = known.expand_as(sq)
    return (sq * known).flatten(1).sum(1) / known.flatten(1).sum(1).clamp(min=1)


def _repeat(t: torch.Tensor | None, r: int) -> torch.Tensor | None:
    """r copies of a batch, one after the other: the layout of the r starts."""
    return None if t is None else t.repeat(r, *[1] * (t.ndim - 1))


def _best(t: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """Row `best[i]` of the r starts of each image i, from the stacked (r * n, ...) layout."""
    r, n = int(len(t) / len(best)), len(best)
    return t.reshape(r, n, *t.shape[1:])[best, torch.arange(n)]


@torch.no_grad()
def _starts(model, target, labels, known, r: int, candidates: int, generator) -> torch.Tensor:
    """(r, n, latent_dim) starting codes: r random draws per image, or the r of `candidates`
    draws whose images come closest to the target (on the known pixels)."""
    n = len(target)
    if candidates <= r:
        return model.latent(r * n, generator).view(r, n, -1)
    pool = model.latent(candidates * n, generator).view(candidates, n, -1)
    scores = torch.stack([masked_mse(model.generate(codes, labels), target, known) for codes in pool])
    best = scores.topk(r, dim=0, largest=False).indices  # (r, n), the lowest first
    return pool[best, torch.arange(n, device=pool.device)]


def _fit_batch(model, target, labels, known, init, feature_net, config, generator, bar) -> Fit:
    n, r = len(target), config.restarts
    z = _starts(model, target, labels, known, r, config.candidates, generator)
    if init is not None:
        z[0] = init
    z = z.view(r * n, -1).requires_grad_(True)
    target, labels, known = _repeat(target, r), _repeat(labels, r), _repeat(known, r)
    target_features = feature_net.features_and_logits(target)[0].detach() if feature_net else None

    def losses() -> torch.Tensor:
        image = model.generate(z, labels)
        loss = masked_mse(image, target, known) + config.prior_weight * z.pow(2).mean(1)
        if feature_net is not None:
            features = feature_net.features_and_logits(image)[0]
            loss = loss + config.feature_weight * F.mse_loss(features, target_features, reduction="none").mean(1)
        return loss

    optimiser = torch.optim.Adam([z], lr=config.lr)
    start = losses().detach()
    for _ in range(config.steps):
        loss = losses()
        # Gradients for z alone: the model's and feature network's weights are not touched.
        (z.grad,) = torch.autograd.grad(loss.sum(), z)
        optimiser.step()
        bar.update()
    with torch.no_grad():
        final = losses().view(r, n)
    best = final.argmin(0)
    return Fit(_best(z.detach(), best), _best(final.flatten(), best), _best(start, best))
