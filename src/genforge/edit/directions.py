"""Directions in latent space found without labels, and walks along them.

- PCA of latent codes (GANSpace, Härkönen et al. 2020): the axes along which the codes of
  real images vary most;
- SeFa (Shen & Zhou 2021): the unit vectors z that the generator's first linear map W
  stretches most, the top eigenvectors of W^T W, read from the weights alone.
"""

from __future__ import annotations

import torch

from ..errors import GenforgeError
from ..models import GenerativeModel


def pca_directions(codes: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top k principal directions (k, D), unit norm, and the codes' standard deviation along each."""
    if len(codes) < 2:
        raise GenforgeError(f"principal directions need at least 2 codes, got {len(codes)}")
    centred = codes - codes.mean(0)
    _, singular, vh = torch.linalg.svd(centred.double(), full_matrices=False)
    k = min(k, len(singular))
    return vh[:k].to(codes.dtype), (singular[:k] / (len(codes) - 1) ** 0.5).to(codes.dtype)


def sefa_directions(model: GenerativeModel, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top k eigenvectors (k, D) of W^T W for the generator's first layer W, unit norm,
    and their eigenvalues in decreasing order."""
    weight = model.first_layer_weight()
    if weight is None:
        raise GenforgeError(f"model {model.name!r} has no linear first layer on z; use PCA directions instead")
    w = weight.detach().double()
    eigenvalues, eigenvectors = torch.linalg.eigh(w.T @ w)  # ascending
    k = min(k, len(eigenvalues))
    top = eigenvalues.flip(0)[:k]
    return eigenvectors.flip(1)[:, :k].T.to(weight.dtype).cpu(), top.to(weight.dtype).cpu()


def traverse(z: torch.Tensor, directions: torch.Tensor, scales: torch.Tensor, steps: int,
             span: float = 3.0) -> torch.Tensor:
    """Codes (k, steps, D): from z, along each direction, from -span to +span times its scale
    (its standard deviation; 1 for a direction of a standard normal prior)."""
    offsets = torch.linspace(-span, span, steps, dtype=z.dtype)
    return z + offsets.view(1, -1, 1) * (scales.view(-1, 1, 1) * directions[:, None])
