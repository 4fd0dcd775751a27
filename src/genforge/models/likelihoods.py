"""The decoder likelihoods p(x | z) of the VAE families, each a log-probability per image in nats.

The decoder's output is a tensor of logits, one per pixel and channel; `sigmoid(logits)` is the
image the decoder means (in [0, 1], what `decode()` returns). The likelihoods read it differently:

- `bernoulli`: each value is the probability of a 1. The classic choice for binarised digits; on
  grey or colour values in (0, 1) it is not a normalised density (BCE is then a reconstruction
  loss, not a likelihood), which is why colour needs one of the others.
- `gaussian`: a Gaussian around the mean image with a fixed std (`gaussian_std`). The std sets
  the balance between reconstruction and KL, so it has to be tuned per data set.
- `gaussian-learned`: the same with one learned log-std per channel (sigma-VAE, Rybkin et al.
  2021). The std then settles at the decoder's residual std, which is also the maximum-likelihood
  balance against the KL, so nothing has to be tuned. Per channel, not per pixel: a per-pixel std
  (independent of z) would shrink to its floor on the pixels that never change (emoji's white
  background) and let those pixels dominate the loss, and a per-channel one cannot overfit.
- `discretised-logistic`: for 8-bit data (PixelCNN++, Salimans et al. 2017). Each value is one
  of 256 levels; its probability is the mass a logistic (mean: the decoder's image, one learned
  log-scale per channel) puts on that level's bin, the two end bins reaching to infinity, so
  the 256 probabilities of a pixel sum to 1 and -log p is a true code length (nats per image;
  divide by 3072 * ln 2 for the literature's bits per dimension at 32x32x3). Inputs that are not
  on the 256 levels are read as the nearest level.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LIKELIHOODS = ("bernoulli", "gaussian", "gaussian-learned", "discretised-logistic")
LEARNED_SCALE = ("gaussian-learned", "discretised-logistic")  # these carry a learned log-scale per channel

LEVELS = 256  # 8-bit data
# A floor on the learned Gaussian std, added in quadrature so the gradient never vanishes: the
# std of the rounding error of 8-bit data (a uniform over one level: 1 / (255 * sqrt(12))).
# Without it a continuous density on discrete data can grow without bound as the std shrinks.
MIN_STD = 1 / ((LEVELS - 1) * math.sqrt(12))


def initial_log_scale(likelihood: str, std: float) -> float:
    """The log-scale a learned likelihood starts from, for a starting std of `std`
    (`gaussian_std`): the Gaussian's log-std, or the logistic scale of that std (s = std * sqrt(3) / pi)."""
    if likelihood == "discretised-logistic":
        return math.log(std * math.sqrt(3) / math.pi)
    return math.log(std)


def bernoulli(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def gaussian(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor | float) -> torch.Tensor:
    """log N(x; mean, std^2) summed over pixels; `std` a number or a tensor that broadcasts to x."""
    if isinstance(std, (int, float)):  # one std for every pixel: the normaliser is one number
        sq = (mean - x).pow(2).flatten(1).sum(1)
        return -sq / (2 * std * std) - x[0].numel() * math.log(std * math.sqrt(2 * math.pi))
    std = torch.as_tensor(std, dtype=x.dtype, device=x.device).expand_as(x)
    log_p = -(x - mean).pow(2) / (2 * std.pow(2)) - std.log() - 0.5 * math.log(2 * math.pi)
    return log_p.flatten(1).sum(1)


def learned_std(log_std: torch.Tensor) -> torch.Tensor:
    """The std (1, C, 1, 1) of the learned Gaussian from its per-channel parameter (C,), floored at MIN_STD."""
    return (torch.exp(2 * log_std) + MIN_STD ** 2).sqrt().view(1, -1, 1, 1)


def discretised_logistic(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """log P(x) summed over pixels, for x on the 256 levels of [0, 1] (or read as the nearest one),
    under a logistic with this mean (in [0, 1]) and log-scale (broadcasting to x), each level
    owning the bin of width 1/255 around it and the end levels the tails.

    log(sigmoid(a) - sigmoid(b)) is computed as log sigmoid(a) + log sigmoid(-b) + log(1 - e^(b - a)),
    exact and stable even when the bin is far in a tail."""
    step = 1 / (LEVELS - 1)
    x = torch.round(x.clamp(0, 1) / step) * step
    inv_s = torch.exp(-log_scale)
    upper = (x - mean + step / 2) * inv_s
    lower = (x - mean - step / 2) * inv_s
    interior = F.logsigmoid(upper) + F.logsigmoid(-lower) + torch.log(-torch.expm1(-step * inv_s)).expand_as(x)
    first = F.logsigmoid(upper)  # level 0: the bin reaches to -infinity
    last = F.logsigmoid(-lower)  # level 255: the bin reaches to +infinity
    log_p = torch.where(x < step / 2, first, torch.where(x > 1 - step / 2, last, interior))
    return log_p.flatten(1).sum(1)


def log_likelihood(kind: str, x: torch.Tensor, logits: torch.Tensor, *, gaussian_std: float,
                   log_scale: torch.Tensor | None = None) -> torch.Tensor:
    """log p(x | z) of each image (N,) in nats, for the decoder's `logits` and the likelihood `kind`."""
    if kind == "bernoulli":
        return bernoulli(x, logits)
    mean = torch.sigmoid(logits)
    if kind == "gaussian":
        return gaussian(x, mean, gaussian_std)
    # The learned ones in float32 even under bf16 autocast: the discretised logistic resolves
    # bins of 1/255, finer than bf16's 8-bit mantissa near 1.
    if kind == "gaussian-learned":
        return gaussian(x.float(), torch.sigmoid(logits.float()), learned_std(log_scale))
    if kind == "discretised-logistic":
        return discretised_logistic(x.float(), torch.sigmoid(logits.float()), log_scale.view(1, -1, 1, 1))
    raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {kind!r}")
