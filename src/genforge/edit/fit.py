"""Finding latent codes by optimisation: the code whose image best matches a target.

This is GAN inversion (Zhu et al. 2016; Abdal et al. 2019) and, with a mask of known pixels,
inpainting by latent search (Yeh et al. 2017). Adam moves z only; the model and the feature
network stay fixed. Several random starts run side by side as one batch and each image keeps
the code of the start that ended lowest, because the loss surface of a generator has many
poor local minima. With `candidates`, many random codes are first scored on the target
(one forward pass each, no gradients) and the best of them become the starts: a cheap search
in the generator's range that hands the optimiser better basins than blind draws.

A conditional model given no labels searches the label too: candidates cycle through the
classes, each start keeps the label it was screened with, and the image keeps the label of
its best start. So a conditional model can complete an image whose class nobody told it. An
autoencoder's encoder guesses a code under every class; the guess that fits best takes the
last start (Fashion-MNIST cvae-gan, centre box read right 86.0% -> 87.3%; BENCHMARKS.md).
Guesses in general (the encoder's, the codes of the training images nearest on the known
pixels) are screened like candidates, and the best `guess_starts` of them take the last starts.

An autoencoder with a fitted latent prior (a Gaussian mixture over its codes, `priors/`) is
searched under that prior rather than N(0, I): candidates are drawn from it and its negative
log density keeps z where the decoder makes real-looking images. The standard normal's holes
are where a VAE decodes blurs; searching in them fits the known pixels with codes that fill
the rest with mush (MNIST beta-vae, centre box read right 81% -> 86%; BENCHMARKS.md).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..errors import GenforgeError
from ..metrics.feature_net import FeatureNet
from ..models import GenerativeModel
from ..priors import LatentPrior


# Called after every step of every latent search in this thread with (steps done, steps in all) of
# that search; what it raises (a server's "job cancelled") stops the search. Set by `on_search_step`.
_ON_STEP: ContextVar[Callable[[int, int], None] | None] = ContextVar("genforge_search_step", default=None)


@contextmanager
def on_search_step(callback: Callable[[int, int], None]) -> Iterator[None]:
    """Within the block, latent searches (run in this thread, however deep in an edit) call
    `callback(done, total)` after each optimisation step: a server reports progress with it, and
    stops a cancelled edit by raising from it. Outside any block searches call nothing."""
    token = _ON_STEP.set(callback)
    try:
        yield
    finally:
        _ON_STEP.reset(token)


@dataclass
class FitConfig:
    steps: int = 150
    restarts: int = 3
    candidates: int = 64  # random codes scored per image; the best `restarts` start the search (0: no screening)
    lr: float = 0.05
    feature_weight: float = 0.01  # feature MSE is ~100x the pixel MSE on digits; this balances them
    prior_weight: float = 1e-3  # keeps z where the generator was trained: times -2 log p(z) / dim, ||z||^2 / dim for N(0, I)
    batch_size: int = 256
    seed: int = 0
    guess_starts: int = 1  # how many of the restarts the best-fitting guesses (`init`) take


@dataclass
class Fit:
    z: torch.Tensor  # (N, latent_dim), the best code of each image
    loss: torch.Tensor  # (N,), its final loss
    start_loss: torch.Tensor  # (N,), the loss of that start before optimisation
    labels: torch.Tensor | None = None  # (N,), the labels searched under (found, if none were given)


def fit_latents(model: GenerativeModel, target: torch.Tensor, labels: torch.Tensor | None = None,
                known: torch.Tensor | None = None, init: torch.Tensor | None = None,
                feature_net: FeatureNet | None = None, config: FitConfig = FitConfig(),
                prior: LatentPrior | None = None, progress: bool = False,
                init_labels: torch.Tensor | None = None) -> Fit:
    """Codes z minimising the pixel MSE to `target` (over the `known` pixels, 1 = known) plus,
    with a feature network, the MSE of its features. `init` guesses codes: (N, latent_dim) one per
    image, which replaces the last start, or (N, G, latent_dim) several, of which the
    `config.guess_starts` closest to the target replace the last starts. When the labels are
    searched, `init_labels` (N, G) are the guesses' labels; without them `init` holds a guess
    under each class (N, num_classes, latent_dim).
    `prior`: a fitted latent prior with a density (`log_prob`) to search under instead of
    N(0, I). A conditional model given no `labels` searches them too. Runs on the model's
    device; takes and returns CPU tensors."""
    generator = torch.Generator().manual_seed(config.seed)
    if feature_net is not None and next(feature_net.parameters()).device != model.device:
        feature_net = copy.deepcopy(feature_net).to(model.device)  # the caller's stays where it is
    if prior is not None and not hasattr(prior, "log_prob"):
        raise GenforgeError(f"latent search needs a prior with a density; a {prior.kind} prior has none")
    # Codes are drawn from the caller's prior (on the CPU, with the seeded generator); its
    # density is evaluated on a copy where the model is.
    density = None if prior is None else copy.deepcopy(prior).to(model.device)
    if known is not None:
        known = known.expand(len(target), *known.shape[1:])
    chunks = range(0, len(target), config.batch_size)
    total = len(chunks) * config.steps
    bar = tqdm(total=total, desc="latent search", unit="step", delay=1.0, disable=not progress, leave=False)
    hook, done = _ON_STEP.get(), 0

    def step() -> None:
        nonlocal done
        done += 1
        bar.update()
        if hook is not None:
            hook(done, total)

    fits = []
    for i in chunks:
        part = slice(i, i + config.batch_size)
        on_model = [None if t is None else t[part].to(model.device)
                    for t in (target, labels, known, init, init_labels)]
        fits.append(_fit_batch(model, *on_model, feature_net, prior, density, config, generator, step))
    bar.close()
    return Fit(*(None if t[0] is None else torch.cat(t).cpu()
                 for t in zip(*((f.z, f.loss, f.start_loss, f.labels) for f in fits))))


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


def _draw(model, prior, k: int, n: int, labels, generator) -> torch.Tensor:
    """(k, n, latent_dim) codes from the prior (N(0, I) without one), k for each of n images
    (labels (k, n) for a conditional prior)."""
    if prior is None:
        return model.latent(k * n, generator).view(k, n, -1)
    labels = None if labels is None or not prior.num_classes else labels.flatten().cpu()
    return prior.sample(k * n, generator, labels).to(model.device).view(k, n, -1)


def _start_labels(model, labels, k: int, n: int) -> torch.Tensor | None:
    """(k, n) labels of k starts per image: the given ones, or the classes in turn when searched."""
    if not model.is_conditional:
        return None
    if labels is not None:
        return labels.expand(k, n)
    return (torch.arange(k, device=model.device) % model.config.num_classes)[:, None].expand(k, n)


@torch.no_grad()
def _starts(model, prior, target, labels, known, r: int, config: FitConfig, generator, guesses=None,
            guess_labels=None):
    """(r, n, latent_dim) starting codes and their (r, n) labels (None for an unconditional
    model): r draws per image, or the r of `config.candidates` draws whose images come closest
    to the target (on the known pixels); then the best `config.guess_starts` of `guesses`
    (n, g, latent_dim; labels (n, g) when the labels are searched) take the last starts."""
    n, candidates = len(target), config.candidates
    if model.is_conditional and labels is None:
        candidates = max(candidates, model.config.num_classes)  # every class gets screened
    if candidates <= r:
        z_labels = _start_labels(model, labels, r, n)
        z = _draw(model, prior, r, n, z_labels, generator)
    else:
        pool_labels = _start_labels(model, labels, candidates, n)
        pool = _draw(model, prior, candidates, n, pool_labels, generator)
        z, z_labels = _screen(model, pool, pool_labels, target, known, r)
    if guesses is not None:
        g = guesses.shape[1]
        m = min(config.guess_starts, g, r)
        if model.is_conditional and labels is None:
            searched = _start_labels(model, None, g, n) if guess_labels is None else guess_labels.T
        else:
            searched = _start_labels(model, labels, g, n)
        guess, guess_label = _screen(model, guesses.transpose(0, 1), searched, target, known, m)
        z[r - m:] = guess
        if z_labels is not None:
            z_labels = z_labels.clone()  # may be a broadcast view
            z_labels[r - m:] = guess_label
    return z, z_labels


def _screen(model, pool, pool_labels, target, known, r: int):
    """The r codes of `pool` (k, n, latent_dim) whose images come closest to the target, best first."""
    scores = torch.stack([masked_mse(model.generate(pool[j], None if pool_labels is None else pool_labels[j]),
                                     target, known) for j in range(len(pool))])
    best = scores.topk(r, dim=0, largest=False).indices  # (r, n), the lowest first
    columns = torch.arange(pool.shape[1], device=pool.device)
    return pool[best, columns], None if pool_labels is None else pool_labels[best, columns]


def _prior_penalty(z: torch.Tensor, density, labels) -> torch.Tensor:
    """-2 log p(z) / dim up to a constant: ||z||^2 / dim under N(0, I)."""
    if density is None:
        return z.pow(2).mean(1)
    labels = labels if density.num_classes else None
    return -2 * density.log_prob(z, labels) / z.shape[1]


def _fit_batch(model, target, labels, known, init, init_labels, feature_net, prior, density, config, generator,
               step) -> Fit:
    n, r = len(target), config.restarts
    guesses = init[:, None] if init is not None and init.ndim == 2 else init
    z, labels = _starts(model, prior, target, labels, known, r, config, generator, guesses, init_labels)
    z = z.reshape(r * n, -1).requires_grad_(True)
    labels = None if labels is None else labels.reshape(r * n)
    target, known = _repeat(target, r), _repeat(known, r)
    target_features = feature_net.features_and_logits(target)[0].detach() if feature_net else None

    def losses() -> torch.Tensor:
        image = model.generate(z, labels)
        loss = masked_mse(image, target, known) + config.prior_weight * _prior_penalty(z, density, labels)
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
        step()
    with torch.no_grad():
        final = losses().view(r, n)
    best = final.argmin(0)
    return Fit(_best(z.detach(), best), _best(final.flatten(), best), _best(start, best),
               None if labels is None else _best(labels, best))
