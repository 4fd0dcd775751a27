"""The GAN families (wgan-gp, sngan, cgan) and the parts they share: losses, penalties,
weight averaging, differentiable augmentation - each checked for what it must really do."""

import pytest
import torch
from torch import nn

from genforge.errors import ConfigError
from genforge.metrics.feature_net import load_feature_net
from genforge.models import build_model
from genforge.models.diffaugment import diff_augment, parse_policy
from genforge.models.ema import ema_copy, update_ema
from genforge.models.gan_networks import ConditionalBatchNorm2d, group_spread
from genforge.models.gan_losses import discriminator_loss, gradient_penalty, mode_seeking_penalty, r1_penalty
from genforge.train.batches import batches

FAMILIES = ["wgan-gp", "sngan", "cgan"]
STEPS_TO_CLASSES = 800  # about 0.8 read at 800 steps, 0.12 at 300
SMALL = {"g_width": 16, "d_width": 16, "latent_dim": 16}


def test_ema_moves_toward_the_weights_and_copies_batch_norm_buffers():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    average = ema_copy(net)
    assert not any(p.requires_grad for p in average.parameters())
    before = average[0].weight.clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    net(torch.randn(16, 4) * 5 + 3)  # a training-mode forward moves BatchNorm's running statistics
    update_ema(average, net, decay=0.9, step=10_000)
    assert torch.allclose(average[0].weight, 0.9 * before + 0.1 * net[0].weight)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        assert torch.equal(getattr(average[1], name), getattr(net[1], name)), name


def test_ema_warm_up_follows_the_weights_closely_at_first():
    net = nn.Linear(2, 2)
    average = ema_copy(net)
    start = average.weight.clone()
    with torch.no_grad():
        net.weight.fill_(1.0)
    update_ema(average, net, decay=0.999, step=0)  # warm-up decay (1 + 0) / (10 + 0) = 0.1
    assert torch.allclose(average.weight, 0.1 * start + 0.9)


def test_gradient_penalty_is_zero_for_a_unit_norm_linear_critic_and_not_otherwise():
    torch.manual_seed(0)
    real, fake = torch.randn(8, 1, 4, 4), torch.randn(8, 1, 4, 4)
    w = torch.randn(16)
    unit = lambda x: x.flatten(1) @ (w / w.norm())  # noqa: E731 - gradient norm 1 everywhere
    double = lambda x: x.flatten(1) @ (2 * w / w.norm())  # noqa: E731 - gradient norm 2 everywhere
    assert gradient_penalty(unit, real, fake) < 1e-10
    assert torch.isclose(gradient_penalty(double, real, fake), torch.tensor(1.0))


def test_gradient_penalty_draws_one_mixing_weight_per_sample():
    torch.manual_seed(0)
    real, fake = torch.zeros(16, 3, 4, 4), torch.ones(16, 3, 4, 4)
    seen = []

    def critic(x):
        seen.append(x.detach())
        return 0.5 * x.pow(2).flatten(1).sum(1)  # gradient = x: the penalty depends on where x lies

    gradient_penalty(critic, real, fake)
    mixed = seen[0]
    # Between real (0) and fake (1), every pixel of an image mixed by the same weight ...
    weights = mixed.flatten(1)
    assert torch.allclose(weights, weights[:, :1].expand_as(weights))
    # ... and a different weight for each image.
    assert len(torch.unique(weights[:, 0])) == 16


def test_r1_penalty_is_half_gamma_times_the_squared_gradient_norm():
    w = torch.arange(16.0)
    linear = lambda x: x.flatten(1) @ w  # noqa: E731 - gradient w at every image
    penalty = r1_penalty(linear, torch.randn(4, 1, 4, 4), gamma=10.0)
    assert torch.isclose(penalty, 5.0 * w.pow(2).sum())


def test_label_smoothing_aims_real_logits_below_one():
    logits = torch.linspace(-3, 6, 200)
    fake = torch.full((1,), -10.0)
    best_plain = logits[torch.stack([discriminator_loss("ns", t[None], fake) for t in logits]).argmin()]
    best_smooth = logits[torch.stack([discriminator_loss("ns", t[None], fake, 0.2) for t in logits]).argmin()]
    assert best_plain == logits[-1]  # without smoothing, more confident is always better
    assert torch.isclose(torch.sigmoid(best_smooth), torch.tensor(0.8), atol=0.02)


def test_switches_reach_the_update():
    """TTUR sets D's learning rate apart; R1 and n_critic show in the step's losses."""
    model = build_model("sngan", lr=1e-4, lr_d=4e-4, r1_gamma=1.0, n_critic=2, **SMALL)
    opt = model.configure_optimizers()
    assert opt["generator"].param_groups[0]["lr"] == 1e-4 and opt["discriminator"].param_groups[0]["lr"] == 4e-4
    losses = model.train_step(torch.rand(8, 1, 28, 28), None, opt)
    assert "r1" in losses and losses["r1"] > 0
    assert opt["discriminator"].state[next(iter(model.discriminator.parameters()))]["step"] == 2  # n_critic
    assert opt["generator"].state[next(iter(model.generator.parameters()))]["step"] == 1


@pytest.mark.parametrize("channels", [1, 3])
def test_diffaugment_keeps_shape_changes_images_and_passes_gradients(channels):
    torch.manual_seed(0)
    x = (torch.rand(8, channels, 28, 28) * 2 - 1).requires_grad_(True)
    for policy in (["color"], ["translation"], ["cutout"], parse_policy("color,translation,cutout")):
        out = diff_augment(x, policy)
        assert out.shape == x.shape
        assert not torch.allclose(out, x), policy
        (grad,) = torch.autograd.grad(out.sum(), x)
        assert grad.abs().sum() > 0, policy
    # Shifting and cutting only move pixels or fill with black: the range stays [-1, 1].
    moved = diff_augment(x, ["translation", "cutout"])
    assert moved.min() >= -1 and moved.max() <= 1


def test_diffaugment_is_seeded_by_torch_and_translation_moves_whole_images():
    x = torch.full((4, 1, 16, 16), -1.0)
    x[:, :, 8, 8] = 1.0  # one bright pixel in the middle: a shift of at most 2 keeps it inside
    torch.manual_seed(3)
    a = diff_augment(x, ["translation"])
    torch.manual_seed(3)
    assert torch.equal(a, diff_augment(x, ["translation"]))
    assert torch.equal((a == 1).flatten(1).sum(1), torch.ones(4, dtype=torch.long))
    assert ((a == 1).flatten(1).float().argmax(1) != 8 * 16 + 8).any()


def _mean_image_distance(model, mean_real):
    model.eval()
    with torch.inference_mode():
        d = (model.sample(256, generator=torch.Generator().manual_seed(1)).mean(0) - mean_real).pow(2).mean()
    model.train()
    return float(d)


def _separation(model, real, labels):
    """How often D ranks a real digit above a fake one (0.5: it cannot tell them apart)."""
    model.eval()
    with torch.inference_mode():
        fake = model.sample(len(real), generator=torch.Generator().manual_seed(2), labels=labels)
        d_labels = labels if model.is_conditional else None
        d_real, d_fake = model.discriminate(real, d_labels), model.discriminate(fake, d_labels)
    model.train()
    return float((d_real[:, None] > d_fake[None, :]).float().mean())


@pytest.mark.parametrize("name", FAMILIES)
def test_family_learns_on_real_digits(name, mnist_small):
    """In a hundred steps the discriminator learns to tell real from fake and the
    generator's samples approach the data (mean image distance)."""
    torch.manual_seed(0)
    model = build_model(name, **SMALL)
    opt = model.configure_optimizers()
    mean_real = mnist_small.images.float().div(255).mean(0)
    held_out = mnist_small.subset(torch.arange(1792, 2048))
    real, labels = held_out.images.float().div(255), held_out.labels
    before = _mean_image_distance(model, mean_real)
    stream = batches(mnist_small.subset(torch.arange(1792)), 64, seed=0)
    for _ in range(100):
        losses = model.train_step(*next(stream), opt)
    assert {"loss_d", "loss_g", "d_real", "d_fake"} <= set(losses)
    assert ("gp" in losses) == (model.config.gp_weight > 0)
    after = _mean_image_distance(model, mean_real)
    assert after < 0.6 * before, (before, after)
    assert _separation(model, real, labels) > 0.8


def test_cgan_label_reaches_both_networks():
    """The same noise under two labels gives two images, and the same image two scores: the
    conditional batch norm and the projection are wired, before any training."""
    torch.manual_seed(0)
    model = build_model("cgan", **SMALL)
    for module in model.modules():  # an untrained generator starts label-blind (gain 1, shift 0)
        if isinstance(module, ConditionalBatchNorm2d):
            nn.init.normal_(module.gain.weight, 1.0, 0.5)
            nn.init.normal_(module.shift.weight, 0.0, 0.5)
    model.eval()
    z, x = model.latent(4), torch.rand(4, 1, 28, 28)
    zeros, threes = torch.zeros(4, dtype=torch.long), torch.full((4,), 3)
    with torch.no_grad():
        assert (model.generate(z, zeros) - model.generate(z, threes)).abs().amax(dim=(1, 2, 3)).min() > 1e-3
        assert (model.discriminate(x, zeros) != model.discriminate(x, threes)).all()


def test_cgan_draws_the_requested_digit_after_a_short_training(mnist_small):
    """With its default (large) learning rates, 800 steps on 2048 digits teach the generator
    the classes: the shipped classifier reads the requested digit far above chance (0.1)."""
    torch.manual_seed(0)
    model = build_model("cgan", **SMALL)
    opt = model.configure_optimizers()
    z = torch.randn(20, SMALL["latent_dim"], generator=torch.Generator().manual_seed(0)).repeat(10, 1)
    labels = torch.arange(10).repeat_interleave(20)  # the same noise asked for as each digit
    net, _ = load_feature_net("mnist")

    def read_rate() -> float:
        model.eval()
        with torch.inference_mode():
            rate = (net(model.generate(z, labels)).argmax(1) == labels).float().mean()
        model.train()
        return float(rate)

    before = read_rate()
    stream = batches(mnist_small, 64, seed=0)
    for _ in range(STEPS_TO_CLASSES):
        model.train_step(*next(stream), opt)
    after = read_rate()
    assert before < 0.25 and after > 0.6, (before, after)


def test_conditional_model_needs_labels():
    model = build_model("cgan", **SMALL)
    with pytest.raises(ValueError, match="needs class labels"):
        model.train_step(torch.rand(4, 1, 28, 28), None, model.configure_optimizers())
    with pytest.raises(ValueError, match=r"labels in \[0, 10\)"):
        model.generate(model.latent(2), torch.tensor([0, 10]))


def test_ema_generator_samples_and_can_be_switched_off():
    model = build_model("sngan", **SMALL)
    assert model.generator_ema is not None and model.first_layer_weight() is model.generator_ema.project.weight
    plain = build_model("sngan", ema_decay=0, **SMALL)
    assert plain.generator_ema is None and plain.first_layer_weight() is plain.generator.project.weight
    assert plain.first_layer_weight().shape[1] == SMALL["latent_dim"]


def test_minibatch_spread_tells_a_collapsed_batch_from_a_varied_one():
    torch.manual_seed(0)
    varied, collapsed = torch.randn(8, 5), torch.randn(1, 5).repeat(8, 1)
    assert group_spread(varied, 4).min() > 0.3 and group_spread(collapsed, 4).max() < 1e-3
    # Groups are images i, i + N/G, ...: a batch with two distinct halves gives spread 0 per group.
    halves = torch.cat([torch.zeros(4, 5), torch.ones(4, 5)])
    alternating = (torch.arange(8) % 2).float().unsqueeze(1).repeat(1, 5)
    assert group_spread(halves, 2).min() > 0.4 and group_spread(alternating, 2).max() < 1e-3
    assert group_spread(torch.randn(7, 5), 4).shape == (7, 1)  # a group size that does not divide N shrinks
    model = build_model("cgan", minibatch_std=4, **SMALL)
    x = torch.rand(8, 1, 28, 28, requires_grad=True)
    model.discriminate(x, torch.arange(8) % 10).sum().backward()
    assert x.grad.abs().sum() > 0
    assert model.train_step(torch.rand(8, 1, 28, 28), torch.arange(8) % 10, model.configure_optimizers())["loss_d"] > 0


def test_mode_seeking_penalises_pairs_that_collapse_and_pairs_share_their_label():
    torch.manual_seed(0)
    z = torch.randn(8, 16)
    varied = torch.rand(8, 1, 6, 6) * 2 - 1
    collapsed = varied[:4].repeat(2, 1, 1, 1) + 0.01 * torch.randn(8, 1, 6, 6)
    assert mode_seeking_penalty(collapsed, z) > 20 * mode_seeking_penalty(varied, z)
    # Fake i and fake i + N/2 get the same label; the generator step logs the penalty only when it is on.
    model = build_model("cgan", mode_seeking=1.0, **SMALL)
    labels = torch.tensor([3, 1, 4, 1, 5, 9, 2])
    assert model._paired(labels).tolist() == [3, 1, 4, 3, 1, 4, 2]
    x, y = torch.rand(8, 1, 28, 28), torch.arange(8) % 10
    assert model.train_step(x, y, model.configure_optimizers())["mode_seeking"] > 0
    plain = build_model("cgan", **SMALL)
    assert "mode_seeking" not in plain.train_step(x, y, plain.configure_optimizers())


@pytest.mark.parametrize("config, message", [
    ({"loss": "lsgan"}, "loss must be one of"),
    ({"mode_seeking": -1}, "mode_seeking"),
    ({"loss": "ns", "label_smoothing": 0.5}, r"label_smoothing must be a finite number in \[0, 0.5\)"),
    ({"loss": "hinge", "label_smoothing": 0.1}, "'ns' loss only"),
    ({"ema_decay": 1.0}, "ema_decay"),
    ({"n_critic": 0}, "n_critic must be a whole number >= 1"),
    ({"gp_weight": -1}, "gp_weight"),
    ({"minibatch_std": -2}, "minibatch_std"),
    ({"diffaug": "color,rotate"}, "diffaug must be a comma list of color, translation, cutout"),
])
def test_invalid_gan_config_is_a_clear_error(config, message):
    with pytest.raises(ConfigError, match=message):
        build_model("sngan", **config)


@pytest.mark.parametrize("name, betas", [("sngan", (0.0, 0.9)), ("cgan", (0.0, 0.9)), ("wgan-gp", (0.5, 0.9))])
def test_each_family_optimises_with_its_adam_betas_and_an_override_reaches_both_networks(name, betas):
    for model, expected in [(build_model(name, **SMALL), betas),
                            (build_model(name, beta1=0.3, beta2=0.99, **SMALL), (0.3, 0.99))]:
        optimizers = model.configure_optimizers()
        assert {o.param_groups[0]["betas"] for o in optimizers.values()} == {expected}
