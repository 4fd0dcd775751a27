"""The likelihood estimate of a colour VAE: 8-bit pixels scored as they are, in bits per dimension."""

import math

import pytest
import torch

from genforge.errors import GenforgeError
from genforge.metrics.nll import EIGHT_BIT, ImportanceNLL
from genforge.models.vae import VAE, VAEConfig


def _images(n=32, seed=0):
    """Colour 16x16 blobs: a smooth structure a small VAE learns in a few dozen steps."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 16), torch.linspace(-1, 1, 16), indexing="ij")
    centre = torch.rand(n, 2, 1, 1, generator=g) - 0.5
    blob = (-((xx - centre[:, :1]) ** 2 + (yy - centre[:, 1:]) ** 2) * 6).exp()  # (n, 1, 16, 16)
    colour = torch.rand(n, 3, 1, 1, generator=g)
    return (255 * (1 - blob * (1 - colour))).round().to(torch.uint8)


def _model(likelihood="discretised-logistic"):
    torch.manual_seed(0)
    return VAE(VAEConfig(image_shape=(3, 16, 16), latent_dim=8, width=8, likelihood=likelihood))


def _nll(model, images):
    model.eval()
    metric = ImportanceNLL(model, k=8, seed=0)
    metric.update(images)
    return metric.compute()


def test_discretised_logistic_nll_is_in_bits_per_dimension_and_falls_with_training():
    images = _images()
    model = _model()
    before = _nll(model, images)
    assert before["nll_binarisation"] == EIGHT_BIT
    assert before["bits_per_dim"] == pytest.approx(before["nll"] / (3 * 16 * 16 * math.log(2)))
    assert 0 < before["bits_per_dim"] < 16  # a probability of each 8-bit value: at most a few bits each
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = images.float() / 255
    for _ in range(60):
        opt.zero_grad()
        model.loss(x)["loss"].backward()
        opt.step()
    after = _nll(model, images)
    assert after["bits_per_dim"] < before["bits_per_dim"] - 0.5


def test_a_gaussian_decoder_gets_no_likelihood_number():
    with pytest.raises(GenforgeError, match="density, not a probability"):
        ImportanceNLL(_model("gaussian-learned"))
