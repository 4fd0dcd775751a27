"""Every model family keeps the interface: shapes, ranges, and learning on real digits."""

import pytest
import torch

from genforge.models import MODELS, build_model
from genforge.errors import UnknownName
from genforge.train.batches import batches

SMALL = {"vae": {"width": 16}, "dcgan": {"g_width": 16, "d_width": 16}, "ref-vae": {"hidden": 64}, "ref-dcgan": {},
         "beta-vae": {"width": 16}, "cvae": {"width": 16},
         "wgan-gp": {"g_width": 16, "d_width": 16}, "sngan": {"g_width": 16, "d_width": 16},
         "cgan": {"g_width": 16, "d_width": 16}, "cvae-gan": {"width": 16, "d_width": 16, "adversarial_start": 0},
         "ref-dcgan-torch": {"g_width": 16, "d_width": 16},
         "resgan": {"g_width": 16, "d_width": 16}, "resgan-cond": {"g_width": 16, "d_width": 16}}
# Families built for some sizes only (the PyTorch examples' DCGAN is 64x64, or 32x32 one stage shorter).
SIZES = {"ref-dcgan-torch": (32, 64)}


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 32, 32)])
def test_interface_shapes_and_range(name, shape):
    if shape[1] not in SIZES.get(name, (shape[1],)):
        pytest.skip(f"{name} is built for sizes {SIZES[name]} only")
    torch.manual_seed(0)
    model = build_model(name, image_shape=shape, **SMALL[name])
    optimizers = model.configure_optimizers()
    x = torch.rand(8, *shape)
    y = torch.arange(8) % model.config.num_classes if model.is_conditional else None
    losses = model.train_step(x, y, optimizers)
    assert losses and all(torch.isfinite(v) and not v.requires_grad for v in losses.values())
    model.eval()
    with torch.inference_mode():
        images = model.sample(5, generator=torch.Generator().manual_seed(0))
        again = model.sample(5, generator=torch.Generator().manual_seed(0))
    assert images.shape == (5, *shape)
    assert 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, again)
    if model.is_autoencoder:
        mu, logvar = model.encode(x, y)
        assert mu.shape == logvar.shape == (8, model.config.latent_dim)
        assert model.decode(mu, y).shape == x.shape
    if model.has_discriminator:
        with torch.inference_mode():
            assert model.discriminate(x, y).shape == (8,)
        weight = model.first_layer_weight()
        assert weight is None or weight.shape[1] == model.config.latent_dim


def test_unknown_model_and_config_field_are_clear_errors():
    with pytest.raises(UnknownName, match="choose one of: vae, dcgan"):
        build_model("vqgan")
    with pytest.raises(UnknownName, match="latent_size"):
        build_model("vae", latent_size=3)


def test_vae_elbo_goes_down_on_real_digits(mnist_small):
    torch.manual_seed(0)
    model = build_model("vae", width=16, latent_dim=8)
    opt = model.configure_optimizers()
    stream = batches(mnist_small, 64, seed=0)
    losses = [float(model.train_step(*next(stream), opt)["loss"]) for _ in range(300)]
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.4 * first, (first, last)  # ~545 nats at the start, ~155 after 300 steps
    # Reconstructions beat the best input-blind guess (the mean image): the code carries the digit.
    x, _ = next(stream)
    model.eval()
    with torch.no_grad():
        recon = model.decode(model.encode(x)[0])
    assert torch.mean((recon - x) ** 2) < 0.75 * torch.mean((mnist_small.images.float().div(255).mean(0) - x) ** 2)


def test_gaussian_likelihood_trains_too(mnist_small):
    torch.manual_seed(0)
    model = build_model("vae", width=16, latent_dim=8, likelihood="gaussian")
    opt = model.configure_optimizers()
    stream = batches(mnist_small, 64, seed=0)
    losses = [float(model.train_step(*next(stream), opt)["recon"]) for _ in range(60)]
    assert sum(losses[-5:]) < sum(losses[:5])


def test_dcgan_samples_move_toward_the_data(mnist_small):
    """A GAN's losses need not fall; what must happen is that its samples approach the data.
    Measured by the distance between the mean sample image and the mean real image."""
    torch.manual_seed(0)
    model = build_model("dcgan", g_width=16, d_width=16, latent_dim=16)
    opt = model.configure_optimizers()
    mean_real = mnist_small.images.float().div(255).mean(0)

    def distance():
        model.eval()
        with torch.inference_mode():
            d = (model.sample(256, generator=torch.Generator().manual_seed(1)).mean(0) - mean_real).pow(2).mean()
        model.train()
        return float(d)

    before = distance()
    stream = batches(mnist_small, 64, seed=0)
    for _ in range(150):
        model.train_step(*next(stream), opt)
    after = distance()
    assert after < 0.3 * before, (before, after)

    # Sampling happens in eval mode, on BatchNorm's running statistics; they must have
    # settled to what the generator sees in training, or eval-mode samples look broken.
    z = model.latent(256, torch.Generator().manual_seed(2))
    with torch.no_grad():
        in_train_mode = model.generate(z)
        model.eval()
        in_eval_mode = model.generate(z)
    assert (in_train_mode.mean(0) - in_eval_mode.mean(0)).abs().mean() < 0.05


def test_tf_reference_keeps_keras_defaults():
    model = build_model("ref-dcgan")
    bns = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    # Keras momentum 0.99 is PyTorch momentum 0.01 - the `BatchNorm2d(C, 0.8)` trap in reverse.
    assert bns and all(m.momentum == 0.01 and m.eps == 1e-3 for m in bns)
    leaky = [m for m in model.modules() if isinstance(m, torch.nn.LeakyReLU)]
    assert leaky and all(m.negative_slope == 0.3 for m in leaky)
    # The tutorial's model.summary(): G 2,330,944 weights of which 25,472 are BatchNorm moving
    # statistics (buffers here), D 212,865.
    g_weights = sum(p.numel() for p in model.generator.parameters())
    g_stats = sum(b.numel() for n, b in model.generator.named_buffers() if "running" in n)
    assert (g_weights, g_weights + g_stats) == (2_305_472, 2_330_944)
    assert sum(p.numel() for p in model.discriminator.parameters()) == 212_865
