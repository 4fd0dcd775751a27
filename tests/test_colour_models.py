"""Every model family at 32x32x3 and 64x64x3, the colour likelihoods of the VAE families, and
the PyTorch examples' DCGAN reference.

The families are taken from the registry, so a new one is covered without a line here. The
images are synthetic (no network in CI): coloured discs and bars on a white background, on the
256 levels of 8-bit data, so they look like what a colour data set such as emoji feeds in.
"""

import math
from dataclasses import fields

import pytest
import torch

from genforge.config_check import ConfigError
from genforge.models import MODELS, build_model
from genforge.models.likelihoods import MIN_STD, discretised_logistic, gaussian

COLOUR_SHAPES = [(3, 32, 32), (3, 64, 64)]
# Small widths by field name, so any family that names its widths this way builds small.
SMALL = {"width": 8, "g_width": 8, "d_width": 8, "hidden": 32, "adversarial_start": 0}


def small(name: str, **overrides) -> dict:
    names = {f.name for f in fields(MODELS[name].Config)}
    return {**{k: v for k, v in SMALL.items() if k in names}, **overrides}


def colour_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """n images (n, 3, size, size) in [0, 1] on 8-bit levels: a disc of one random colour and a
    bar of another on white, with a soft edge, at random places and sizes."""
    g = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    images = torch.ones(n, 3, size, size)
    for i in range(n):
        cy, cx, r = (torch.rand(3, generator=g) * torch.tensor([0.5, 0.5, 0.25]) + torch.tensor([0.25, 0.25, 0.15]))
        disc = torch.sigmoid((r - ((ys - cy) ** 2 + (xs - cx) ** 2).sqrt()) * size)
        top = float(torch.rand((), generator=g)) * 0.7
        bar = ((ys > top) & (ys < top + 0.15)).float()
        for shape, colour in ((bar, torch.rand(3, generator=g)), (disc, torch.rand(3, generator=g))):
            images[i] = images[i] * (1 - shape) + colour[:, None, None] * shape
    return torch.round(images * 255) / 255


@pytest.mark.parametrize("shape", COLOUR_SHAPES, ids=lambda s: f"{s[1]}x{s[2]}x{s[0]}")
@pytest.mark.parametrize("name", list(MODELS))
def test_every_family_builds_trains_samples_and_judges_in_colour(name, shape):
    torch.manual_seed(0)
    model = build_model(name, image_shape=shape, **small(name))
    assert model.config.image_shape == shape
    x = colour_images(8, shape[1])
    y = torch.arange(8) % model.config.num_classes if model.is_conditional else None
    model.train()
    before = [p.detach().clone() for p in model.parameters()]
    losses = model.train_step(x, y, model.configure_optimizers())
    assert losses and all(torch.isfinite(v).all() and not v.requires_grad for v in losses.values()), losses
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters())), "the step changed nothing"
    model.eval()
    with torch.inference_mode():
        images = model.sample(6, generator=torch.Generator().manual_seed(1))
        again = model.sample(6, generator=torch.Generator().manual_seed(1))
        assert images.shape == (6, *shape) and torch.isfinite(images).all()
        assert 0 <= images.min() and images.max() <= 1
        assert torch.equal(images, again)
        if model.is_autoencoder:
            mu, logvar = model.encode(x, y)
            assert mu.shape == logvar.shape == (8, model.config.latent_dim)
            recon = model.decode(mu, y)
            assert recon.shape == x.shape and torch.isfinite(recon).all() and 0 <= recon.min() and recon.max() <= 1
        if model.has_discriminator:
            logits = model.discriminate(x, y)
            assert logits.shape == (8,) and torch.isfinite(logits).all()
    weight = model.first_layer_weight()
    assert weight is None or weight.shape[1] == model.config.latent_dim


# --- the colour likelihoods ----------------------------------------------------------------------
VAE_FAMILIES = [n for n, cls in MODELS.items() if "likelihood" in {f.name for f in fields(cls.Config)}]


@pytest.mark.parametrize("likelihood", ["gaussian-learned", "discretised-logistic"])
@pytest.mark.parametrize("name", VAE_FAMILIES)
def test_vae_families_train_in_colour_with_each_learned_likelihood(name, likelihood):
    torch.manual_seed(0)
    model = build_model(name, image_shape=(3, 32, 32), likelihood=likelihood, **small(name))
    assert model.log_scale.shape == (3,)  # one learned scale per channel
    x = colour_images(8, 32)
    y = torch.arange(8) % 10 if model.is_conditional else None
    start = model.log_scale.detach().clone()
    losses = model.train_step(x, y, model.configure_optimizers())
    assert all(torch.isfinite(v).all() for v in losses.values()), losses
    assert not torch.equal(start, model.log_scale.detach()), "the scale is not trained"
    # log p(x | z) per image, in nats: finite, and the loss's reconstruction term is its mean.
    with torch.no_grad():
        mu, _ = model.encode(x, y)
        ll = model.log_likelihood(x, mu, y)
    assert ll.shape == (8,) and torch.isfinite(ll).all()


def test_a_learned_scale_is_saved_and_restored_with_the_weights():
    model = build_model("cvae", image_shape=(3, 32, 32), likelihood="discretised-logistic", width=8)
    with torch.no_grad():
        model.log_scale.copy_(torch.tensor([-4.0, -3.0, -2.0]))
    again = build_model("cvae", image_shape=(3, 32, 32), likelihood="discretised-logistic", width=8)
    again.load_state_dict(model.state_dict())  # strict: same names and shapes
    assert torch.equal(again.log_scale, model.log_scale)


def test_grey_defaults_are_unchanged_bernoulli_and_no_learned_scale():
    for name in VAE_FAMILIES:
        model = build_model(name)
        assert model.config.likelihood == "bernoulli" and model.log_scale is None
        assert "log_scale" not in model.state_dict()
    fixed = build_model("vae", likelihood="gaussian", gaussian_std=0.2, width=8)
    assert fixed.log_scale is None


def test_fixed_gaussian_is_the_same_formula_as_before():
    torch.manual_seed(0)
    x, logits = torch.rand(4, 1, 28, 28), torch.randn(4, 1, 28, 28)
    model = build_model("vae", likelihood="gaussian", gaussian_std=0.3, width=8)
    s = 0.3
    old = (-(torch.sigmoid(logits) - x).pow(2).flatten(1).sum(1) / (2 * s * s)
           - 784 * math.log(s * math.sqrt(2 * math.pi)))
    torch.testing.assert_close(model.likelihood_of_logits(x, logits), old)


def test_unknown_likelihood_is_one_clear_line():
    with pytest.raises(ConfigError) as caught:
        build_model("vae", likelihood="laplace")
    assert str(caught.value) == ("vae config: likelihood must be one of bernoulli, gaussian, gaussian-learned, "
                                 "discretised-logistic, got 'laplace'")


@pytest.mark.parametrize("mean,log_scale", [(0.52, -3.0), (0.0, -5.0), (1.0, -1.0), (0.3, 0.5), (0.999, -7.0),
                                            (0.02, -9.0)])
def test_discretised_logistic_puts_probability_one_on_the_256_levels(mean, log_scale):
    levels = torch.arange(256, dtype=torch.float64).div(255).view(256, 1, 1, 1)
    m = torch.full_like(levels, mean)
    log_p = discretised_logistic(levels, m, torch.tensor(log_scale, dtype=torch.float64))
    assert torch.isfinite(log_p).all()
    torch.testing.assert_close(log_p.exp().sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-9, rtol=0)
    if log_scale < -2:  # a narrow logistic: the most probable level is the one nearest the mean
        assert int(log_p.argmax()) == round(mean * 255)


def test_discretised_logistic_reads_off_level_values_as_the_nearest_level():
    x = torch.tensor([0.1, 0.5, 0.9]).view(1, 3, 1, 1)
    near = torch.round(x * 255) / 255
    mean, log_scale = torch.full_like(x, 0.4), torch.tensor(-3.0)
    torch.testing.assert_close(discretised_logistic(x + 0.001, mean, log_scale),
                               discretised_logistic(near, mean, log_scale))


def test_discretised_logistic_is_finite_with_gradients_far_in_the_tails():
    x = torch.tensor([0.0, 1.0, 0.5, 0.0]).view(1, 4, 1, 1)
    mean = torch.tensor([1.0, 0.0, 0.0, 0.5]).view(1, 4, 1, 1).requires_grad_(True)
    log_scale = torch.full((1, 4, 1, 1), -8.0, requires_grad=True)
    log_p = discretised_logistic(x, mean, log_scale)
    log_p.sum().backward()
    assert torch.isfinite(log_p).all() and float(log_p.detach()) < -1000  # nearly impossible, not -inf or nan
    assert torch.isfinite(mean.grad).all() and torch.isfinite(log_scale.grad).all()


def test_gaussian_density_integrates_to_one():
    grid = torch.linspace(-3, 4, 20001, dtype=torch.float64).view(-1, 1, 1, 1)
    p = gaussian(grid, torch.tensor(0.4, dtype=torch.float64), 0.3).exp()
    torch.testing.assert_close(torch.trapezoid(p, grid.flatten()), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("likelihood", ["gaussian-learned", "discretised-logistic"])
def test_learned_scale_converges_to_the_residual_spread_of_each_channel(likelihood):
    """With the decoder's image fixed and the data that image plus noise of a known std per
    channel, maximising the likelihood over the scale alone finds that std (the logistic's
    std is its scale times pi / sqrt(3))."""
    torch.manual_seed(0)
    model = build_model("vae", image_shape=(3, 32, 32), likelihood=likelihood, width=8)
    logits = torch.randn(16, 3, 16, 16) * 0.5  # the likelihood reads any size: small keeps it fast
    true_std = torch.tensor([0.03, 0.08, 0.15])
    x = (torch.sigmoid(logits) + torch.randn(16, 3, 16, 16) * true_std.view(1, 3, 1, 1))
    x = torch.round(x.clamp(0, 1) * 255) / 255  # 8-bit data, as the logistic expects
    residual = (x - torch.sigmoid(logits)).transpose(0, 1).flatten(1).pow(2).mean(1).sqrt()
    opt = torch.optim.Adam([model.log_scale], lr=0.05)
    for _ in range(200):
        loss = -model.likelihood_of_logits(x, logits).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    scale = model.log_scale.detach().exp()
    learned = (scale.pow(2) + MIN_STD ** 2).sqrt() if likelihood == "gaussian-learned" else scale * math.pi / math.sqrt(3)
    # The Gaussian's maximum is exactly the residual RMS; the logistic's is near it (a
    # different shape fitted to Gaussian noise, and clipped at 0 and 1).
    tol = 0.02 if likelihood == "gaussian-learned" else 0.12
    assert torch.allclose(learned, residual, rtol=tol), (learned, residual)


# --- the PyTorch examples' DCGAN ----------------------------------------------------------------
def test_ref_dcgan_torch_is_the_example_layer_for_layer():
    model = build_model("ref-dcgan-torch")
    c = model.config
    assert (c.image_shape, c.latent_dim, c.g_width, c.d_width, c.lr, c.batch_size) == ((3, 64, 64), 100, 64, 64,
                                                                                       2e-4, 64)
    g = [m for m in model.generator.main if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding) for m in g] == [
        (100, 512, (4, 4), (1, 1), (0, 0)), (512, 256, (4, 4), (2, 2), (1, 1)), (256, 128, (4, 4), (2, 2), (1, 1)),
        (128, 64, (4, 4), (2, 2), (1, 1)), (64, 3, (4, 4), (2, 2), (1, 1))]
    d = [m for m in model.discriminator.main if isinstance(m, torch.nn.Conv2d)]
    assert [(m.in_channels, m.out_channels, m.stride) for m in d] == [
        (3, 64, (2, 2)), (64, 128, (2, 2)), (128, 256, (2, 2)), (256, 512, (2, 2)), (512, 1, (1, 1))]
    assert all(m.bias is None for m in g + d)
    assert isinstance(model.generator.main[-1], torch.nn.Tanh)
    d_norms = [m for m in model.discriminator.main if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(d_norms) == 3  # none after the first convolution
    # N(0, 0.02) convolutions, BatchNorm weights N(1, 0.02) and zero biases.
    conv = torch.cat([m.weight.detach().flatten() for m in g + d])
    assert abs(float(conv.mean())) < 1e-3 and abs(float(conv.std()) - 0.02) < 1e-3
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    gains = torch.cat([m.weight.detach() for m in bn])
    assert abs(float(gains.mean()) - 1) < 0.005 and abs(float(gains.std()) - 0.02) < 0.005
    assert all(float(m.bias.detach().abs().max()) == 0 for m in bn)
    opts = model.configure_optimizers()
    assert all(o.defaults["lr"] == 2e-4 and o.defaults["betas"] == (0.5, 0.999) for o in opts.values())


def test_ref_dcgan_torch_shorter_at_32_and_refuses_other_sizes_in_one_line():
    model = build_model("ref-dcgan-torch", image_shape=(3, 32, 32))
    g = [m for m in model.generator.main if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [m.out_channels for m in g] == [256, 128, 64, 3]  # the 64x64 ladder less its ngf*8 stage
    for shape in [(1, 28, 28), (3, 128, 128)]:
        with pytest.raises(ConfigError) as caught:
            build_model("ref-dcgan-torch", image_shape=shape)
        assert str(caught.value).startswith("ref-dcgan-torch config: image_shape must be (channels, size, size) "
                                            "with a size of 64 (the example's) or 32, got ")


def test_ref_dcgan_torch_discriminator_learns_to_tell_colour_images_from_its_fakes():
    torch.manual_seed(0)
    model = build_model("ref-dcgan-torch", image_shape=(3, 32, 32), g_width=8, d_width=8)
    opts = model.configure_optimizers()
    x = colour_images(16, 32)
    stats = [model.train_step(x, None, opts) for _ in range(10)]
    # The example's D drives its loss down from ln 4 (chance) on a batch it sees again and again.
    assert float(stats[0]["loss_d"]) > float(stats[-1]["loss_d"])
    assert float(stats[-1]["d_real"]) > float(stats[-1]["d_fake"])


def test_conditional_model_takes_the_number_of_classes_from_its_data(tmp_path):
    """A folder of three class subfolders trains a cgan with three classes (not the default ten):
    `num_classes` defaults to the data's label count, as emoji's 9 categories do."""
    import json

    from PIL import Image

    from genforge.cli import main
    rng = torch.Generator().manual_seed(0)
    for name in ("circle", "square", "star"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for i in range(4):
            pixels = torch.randint(0, 256, (8, 8, 3), generator=rng, dtype=torch.uint8).numpy()
            Image.fromarray(pixels).save(tmp_path / "data" / name / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", "--model", "cgan", "--dataset", f"folder:{tmp_path / 'data'}", "--image-size", "8",
                 "--set", "g_width=4", "--set", "d_width=4", "--batch-size", "4", "--steps", "1",
                 "--no-progress", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model_config"]["num_classes"] == 3
    assert config["data"]["classes"] == ["circle", "square", "star"]
