"""The VAE family (beta-VAE, conditional VAE) and the ex-post latent priors fitted to their codes."""

import json
import shutil

import numpy as np
import pytest
import torch

import genforge
from genforge.api import Model
from genforge.cli import main
from genforge.errors import GenforgeError
from genforge.metrics.feature_net import load_feature_net
from genforge.models import build_model
from genforge.priors import fit_prior, load_prior, save_prior
from genforge.report.grid import to_uint8
from genforge.train.batches import batches
from genforge.train.checkpoint import load_checkpoint, save_checkpoint

TINY_VAE = ["--model", "vae", "--dataset", "mnist", "--set", "width=8", "--set", "latent_dim=4", "--no-progress"]


def train_steps(model, data, steps, seed=0):
    optimizers = model.configure_optimizers()
    stream = batches(data, 64, seed=seed)
    return [model.train_step(*next(stream), optimizers) for _ in range(steps)], optimizers


def test_beta_vae_learns_and_its_kl_weight_warms_up_and_resumes(mnist_small, tmp_path):
    torch.manual_seed(0)
    model = build_model("beta-vae", width=16, latent_dim=8, beta=2.0, kl_warmup_steps=80)
    losses, optimizers = train_steps(model, mnist_small, 100)
    weights = [float(step["kl_weight"]) for step in losses]
    assert weights[0] == 0 and weights[40] == pytest.approx(1.0) and weights[-1] == 2.0
    first, last = (sum(float(s["recon"]) for s in part) / 10 for part in (losses[:10], losses[-10:]))
    assert last < 0.5 * first, (first, last)

    # Resumed with a longer warm-up, the weight continues from step 100 of 200.
    save_checkpoint(tmp_path / "ckpt.safetensors", model, optimizers, {"step": 100})
    resumed = build_model("beta-vae", width=16, latent_dim=8, beta=2.0, kl_warmup_steps=200)
    load_checkpoint(tmp_path / "ckpt.safetensors", resumed, resumed.configure_optimizers())
    assert int(resumed.kl_step) == 100 and float(resumed.kl_weight()) == 1.0


@pytest.mark.parametrize("name, options", [("beta-vae", {"kl_warmup_steps": 0}), ("cvae", {})])
def test_a_larger_beta_gives_a_smaller_kl(name, options, mnist_small):
    kls = {}
    for beta in (0.25, 4.0):
        torch.manual_seed(0)
        model = build_model(name, width=16, latent_dim=8, beta=beta, **options)
        losses, _ = train_steps(model, mnist_small, 120)
        kls[beta] = sum(float(s["kl"]) for s in losses[-20:]) / 20
    assert kls[4.0] < 0.5 * kls[0.25], kls
    with pytest.raises(GenforgeError, match="beta must be a finite number >= 0"):
        build_model(name, beta=-1.0)


def test_cvae_draws_the_requested_digit(mnist_small):
    torch.manual_seed(0)
    # A small code and a brisk learning rate: the decoder must lean on the label, and soon.
    model = build_model("cvae", width=16, latent_dim=4, lr=3e-3)
    with pytest.raises(ValueError, match="labels"):
        model.loss(torch.rand(2, 1, 28, 28), None)
    losses, _ = train_steps(model, mnist_small, 450)
    assert float(losses[-1]["loss"]) < 0.5 * float(losses[0]["loss"])
    model.eval()
    z = torch.randn(20, 4, generator=torch.Generator().manual_seed(0)).repeat(10, 1)  # the same codes ...
    labels = torch.arange(10).repeat_interleave(20)  # ... decoded as each digit
    net, _ = load_feature_net("mnist")
    with torch.inference_mode():
        read = net(model.decode(z, labels)).argmax(1)
    assert (read == labels).float().mean() > 0.5  # chance is 0.1; about 0.7 after 450 steps


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Six tight, well separated clusters in 8-D: far from any single Gaussian."""
    centers = 4 * torch.randn(6, 8, generator=torch.Generator().manual_seed(123))
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(6, (n,), generator=g)
    return centers[which] + 0.3 * torch.randn(n, 8, generator=g), which


def cluster_fit(samples: torch.Tensor) -> tuple[float, torch.Tensor]:
    """Mean distance from each sample to its nearest cluster centre, and the share of each cluster."""
    distance, nearest = torch.cdist(samples, 4 * torch.randn(6, 8, generator=torch.Generator().manual_seed(123))).min(1)
    return float(distance.mean()), torch.bincount(nearest, minlength=6) / len(samples)


@pytest.mark.parametrize("kind, options", [("gmm", {}), ("gmm", {"covariance": "diag"}), ("gmm", {"max_codes": 1000}),
                                           ("flow", {"train_steps": 1000})])
def test_priors_learn_a_many_moded_distribution(kind, options):
    z, which = blobs(3000, seed=0)
    prior = fit_prior(kind, z, **options)
    samples = prior.sample(2000, torch.Generator().manual_seed(0))
    distance, shares = cluster_fit(samples)
    real_distance, _ = cluster_fit(blobs(2000, seed=1)[0])  # about 0.8: 0.3 * E|N(0, I_8)|
    # The Gaussian with the data's own mean and covariance: what N(0, I) codes amount to.
    moments = torch.distributions.MultivariateNormal(z.mean(0), torch.cov(z.T))
    gaussian_distance, _ = cluster_fit(moments.sample((2000,)))
    assert distance < 2 * real_distance < 0.3 * gaussian_distance, (distance, real_distance, gaussian_distance)
    assert (shares - 1 / 6).abs().max() < 0.06, shares

    per_class = fit_prior(kind, z, which, **options)
    three = per_class.sample(200, torch.Generator().manual_seed(0), torch.full((200,), 3))
    assert (cluster_fit(three)[1][3]) > 0.95


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_mixture_em_lands_where_scikit_learns_does(covariance, monkeypatch):
    from sklearn.mixture import GaussianMixture

    from genforge.priors import em
    z = blobs(3000, seed=0)[0]
    theirs = GaussianMixture(12, covariance_type=covariance, random_state=0).fit(z.double().numpy())
    covariances = theirs.covariances_ if covariance == "full" else np.apply_along_axis(np.diag, -1, theirs.covariances_)
    for cache in (em.CACHE_BYTES, 0):  # the coordinate products kept, or made again every step
        monkeypatch.setattr(em, "CACHE_BYTES", cache)
        ours = em.fit_mixture(z, 12, covariance, seed=0)
        assert ours.converged and ours.iterations == theirs.n_iter_
        for mine, sklearns in ((ours.weights, theirs.weights_), (ours.means, theirs.means_),
                               (ours.covariances, covariances)):
            torch.testing.assert_close(mine, torch.from_numpy(sklearns), rtol=1e-6, atol=1e-8)
    with pytest.raises(GenforgeError, match="NaN or infinite"):
        em.fit_mixture(torch.cat([z, torch.full((1, 8), float("nan"))]), 12)
    monkeypatch.setattr(em, "REG_COVAR", -100.0)  # covariances no longer positive definite
    with pytest.raises(GenforgeError, match="covariance is singular"):
        em.fit_mixture(z, 12)


def test_gmm_max_codes_fits_a_seeded_subset():
    z = blobs(3000, seed=0)[0]
    every = fit_prior("gmm", z, components=6)
    subset = fit_prior("gmm", z, components=6, max_codes=300)
    again = fit_prior("gmm", z, components=6, max_codes=300)
    assert torch.equal(subset.means, again.means)  # the same subset each time
    assert not torch.allclose(subset.means, every.means)  # and not all the codes
    assert cluster_fit(subset.sample(1000, torch.Generator().manual_seed(0)))[0] < 1.5  # still the clusters


def test_training_says_when_it_fits_the_prior(tmp_path, capsys, mnist_train):
    genforge.train("vae", "mnist", tmp_path / "vae", steps=3, width=8, latent_dim=4, report=False)
    err = capsys.readouterr().err
    assert "fitting a gmm latent prior to 60000 training codes" in err and "fitted the gmm prior in" in err


@pytest.mark.parametrize("kind, options", [("gmm", {"components": 6}), ("flow", {"train_steps": 1000})])
def test_temperature_widens_the_codes(kind, options):
    prior = fit_prior(kind, blobs(3000, seed=0)[0], **options)
    assert torch.equal(prior.sample(50, torch.Generator().manual_seed(1)),
                       prior.sample(50, torch.Generator().manual_seed(1), temperature=1.0))
    spread, shares = {}, {}
    for t in (0.5, 1.0, 1.5):
        spread[t], shares[t] = cluster_fit(prior.sample(2000, torch.Generator().manual_seed(0), temperature=t))
    assert spread[0.5] < 0.8 * spread[1.0] and spread[1.5] > 1.2 * spread[1.0], spread
    if kind == "gmm":  # each component widened about its mean: the spread scales with T, the modes stay
        assert abs(spread[0.5] / spread[1.0] - 0.5) < 0.05 and abs(spread[1.5] / spread[1.0] - 1.5) < 0.1, spread
        assert torch.equal(shares[0.5], shares[1.0]) and torch.equal(shares[1.5], shares[1.0])


@pytest.mark.parametrize("covariance", ["full", "diag"])
def test_gmm_density_is_scikit_learns_for_each_class(covariance):
    from sklearn.mixture import GaussianMixture

    z, which = blobs(3000, seed=0)
    prior = fit_prior("gmm", z, which % 2, components=3, covariance=covariance)
    query, query_class = blobs(200, seed=1)
    query_class = query_class % 2
    got = prior.log_prob(query, query_class)
    for c in (0, 1):
        reference = GaussianMixture(3, covariance_type=covariance, random_state=0).fit(z[which % 2 == c].double().numpy())
        want = torch.from_numpy(reference.score_samples(query[query_class == c].double().numpy())).float()
        assert torch.allclose(got[query_class == c], want, rtol=1e-4, atol=1e-3), (got[query_class == c] - want).abs().max()


@pytest.mark.parametrize("kind, options", [("gmm", {"components": 3}), ("flow", {"train_steps": 20})])
def test_prior_round_trips_through_its_files_and_samples_by_seed(kind, options, tmp_path):
    prior = fit_prior(kind, blobs(500, seed=0)[0], **options)
    save_prior(prior, tmp_path / "prior.safetensors")
    again = load_prior(tmp_path / "prior.safetensors")
    assert type(again) is type(prior) and again.describe() == prior.describe()
    seeded = [p.sample(50, torch.Generator().manual_seed(7)) for p in (prior, prior, again)]
    assert torch.equal(seeded[0], seeded[1]) and torch.equal(seeded[0], seeded[2])
    assert not torch.equal(seeded[0], prior.sample(50, torch.Generator().manual_seed(8)))


@pytest.fixture(scope="module")
def run_with_gmm(tmp_path_factory, mnist_train):
    out = tmp_path_factory.mktemp("vae")
    assert main(["train", *TINY_VAE, "--steps", "30", "--prior", "gmm", "--out", str(out)]) == 0
    return out


def test_train_fits_a_prior_that_sampling_uses(run_with_gmm, tmp_path):
    assert (run_with_gmm / "prior.safetensors").is_file() and (run_with_gmm / "prior.json").is_file()
    model = genforge.load(run_with_gmm)
    assert model.prior_kind == "gmm"
    assert torch.equal(model.sample(8, seed=3), model.sample(8, seed=3, prior="gmm"))
    assert torch.allclose(model.sample(8, seed=3), model.sample(8, seed=3, batch_size=3), atol=1e-5)
    assert not torch.equal(model.sample(8, seed=3), model.sample(8, seed=3, prior="none"))
    for prior in ("none", "gmm"):
        assert main(["sample", str(run_with_gmm), "--n", "4", "--prior", prior, "--out", str(tmp_path / prior)]) == 0
        assert len(list((tmp_path / prior).iterdir())) == 4


def test_sampling_temperature_reaches_the_api_and_the_cli(run_with_gmm, tmp_path, capsys):
    model = genforge.load(run_with_gmm)
    assert torch.equal(model.sample(8, seed=3), model.sample(8, seed=3, temperature=1.0))
    for prior in ("gmm", "none"):
        cool, warm = (model.sample(500, seed=3, prior=prior, temperature=t) for t in (0.3, 2.0))
        assert warm.std(0).mean() > cool.std(0).mean(), prior  # wider codes, more varied images
    with pytest.raises(GenforgeError, match="temperature must be positive"):
        model.sample(4, temperature=0)
    assert main(["sample", str(run_with_gmm), "--n", "4", "--temperature", "1.3", "--out", str(tmp_path / "t.npz")]) == 0
    assert np.array_equal(np.load(tmp_path / "t.npz")["images"], to_uint8(model.sample(4, seed=0, temperature=1.3)))
    assert main(["eval", str(run_with_gmm), "--n", "200", "--nll-images", "0", "--temperature", "1.3",
                 "--json", str(tmp_path / "e.json")]) == 0
    assert "(temperature 1.3)" in capsys.readouterr().out
    assert json.loads((tmp_path / "e.json").read_text())["temperature"] == 1.3
    assert main(["sample", str(run_with_gmm), "--temperature", "-1", "--out", str(tmp_path / "x")]) == 2
    assert "--temperature" in capsys.readouterr().err


def test_genforge_prior_takes_the_priors_options(run_with_gmm, tmp_path, capsys):
    run = shutil.copytree(run_with_gmm, tmp_path / "run")
    assert main(["prior", str(run), "--set", "components=3", "--set", "covariance=diag"]) == 0
    model = genforge.load(run)
    assert model.prior.describe()["options"] == {"components": 3, "covariance": "diag", "seed": 0, "max_codes": None}
    assert model.prior.means.shape[1] == 3 and model.sample(4, seed=0).shape == (4, 1, 28, 28)
    capsys.readouterr()
    for bad, says in ((["--set", "componets=3"], "unknown option 'componets'"),
                      (["--set", "covariance=tied"], "covariance must be one of full, diag"),
                      (["--set", "components=0"], "components must be a whole number >= 1"),
                      (["--set", "max_codes=2"], "max_codes must be a whole number of at least the 120 components")):
        assert main(["prior", str(run), *bad]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert genforge.load(run).prior.describe()["options"]["components"] == 3  # the refused fits replaced nothing


def test_a_prior_not_fitted_is_one_clear_line(run_with_gmm, tmp_path, capsys):
    assert main(["sample", str(run_with_gmm), "--prior", "flow", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no 'flow' prior" in err[0] and "genforge prior" in err[0], err


def test_a_gan_has_no_latent_prior(tmp_path, capsys):
    gan = Model(build_model("dcgan", g_width=8, d_width=8), {})
    with pytest.raises(GenforgeError, match="no encoder"):
        gan.sample(2, prior="gmm")
    assert main(["train", "--model", "dcgan", "--dataset", "mnist", "--steps", "1", "--prior", "gmm",
                 "--out", str(tmp_path / "gan"), "--no-progress"]) == 2
    assert "no encoder" in capsys.readouterr().err
    assert not (tmp_path / "gan" / "config.json").exists()  # refused before any training


def test_cvae_gan_learns_and_its_discriminator_joins_on_time(mnist_small, tmp_path):
    torch.manual_seed(0)
    model = build_model("cvae-gan", width=16, latent_dim=8, adversarial_start=60)
    losses, optimizers = train_steps(model, mnist_small, 120)
    assert "loss_d" not in losses[59] and "loss_d" in losses[60]
    first, last = (sum(float(s["recon"]) for s in part) / 10 for part in (losses[:10], losses[-10:]))
    assert last < 0.5 * first, (first, last)
    scales = torch.stack([s["adversarial_scale"] for s in losses[60:]])
    assert torch.isfinite(scales).all() and (scales > 0).all()
    # The discriminator learns to tell the reconstructions from the real images.
    assert float(losses[-1]["d_real"]) > float(losses[-1]["d_fake"])
    x, y = mnist_small.images[:8].float() / 255, mnist_small.labels[:8]
    assert model.discriminate(x, y).shape == (8,)
    with pytest.raises(ValueError, match="labels"):
        model.discriminate(x)

    save_checkpoint(tmp_path / "ckpt.safetensors", model, optimizers, {"step": 120})
    resumed = build_model("cvae-gan", width=16, latent_dim=8, adversarial_start=60)
    load_checkpoint(tmp_path / "ckpt.safetensors", resumed, resumed.configure_optimizers())
    assert int(resumed.step) == 120
    with pytest.raises(GenforgeError, match="adversarial_weight must be a finite number >= 0, got -1.0"):
        build_model("cvae-gan", adversarial_weight=-1.0)
