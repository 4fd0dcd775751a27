"""The adversarial losses and the two gradient penalties the GAN families choose from.

Logits are the discriminator's raw outputs (N,); a critic is a callable from images to
logits, so a penalty can evaluate it at points of its own choosing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("ns", "hinge", "wasserstein")


def discriminator_loss(kind: str, real: torch.Tensor, fake: torch.Tensor,
                       label_smoothing: float = 0.0) -> torch.Tensor:
    if kind == "ns":
        # Logistic loss; one-sided smoothing (Salimans et al. 2016) aims real logits at 1 - s.
        target = torch.full_like(real, 1.0 - label_smoothing)
        return F.binary_cross_entropy_with_logits(real, target) + F.softplus(fake).mean()
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "wasserstein":
        return fake.mean() - real.mean()
    raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind == "ns":
        # softplus(-t) = -log sigmoid(t): the non-saturating loss without the unstable log.
        return F.softplus(-fake).mean()
    if kind in ("hinge", "wasserstein"):
        return -fake.mean()
    raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")


def gradient_penalty(critic: Callable[[torch.Tensor], torch.Tensor],
                     real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): (||grad critic||-1)^2 at random points between
    real and fake images, one mixing weight per sample."""
    alpha = torch.rand(len(real), *[1] * (real.dim() - 1), device=real.device)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def r1_penalty(critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor,
               gamma: float) -> torch.Tensor:
    """R1 (Mescheder et al. 2018): gamma/2 * ||grad_x critic(x)||^2 on real images."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(real).sum(), real, create_graph=True)
    return gamma / 2 * grad.pow(2).flatten(1).sum(1).mean()


def mode_seeking_penalty(images: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Mode seeking (Mao et al. 2019, MSGAN): the batch holds pairs, image i and image i + N/2
    drawn under the same condition from different codes; the penalty is the inverse of how far
    apart the pairs' images are per unit of code distance, so a generator that maps many codes
    to one image (the mode collapse behind low recall) pays for it."""
    half = len(images) // 2
    image_gap = (images[:half] - images[half:2 * half]).abs().mean()
    code_gap = (z[:half] - z[half:2 * half]).abs().mean()
    return 1 / (image_gap / code_gap + 1e-5)
