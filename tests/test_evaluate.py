"""The evaluation pipeline on real images with the shipped feature networks."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import genforge
from genforge.cli import main
from genforge.errors import GenforgeError
from genforge.metrics.evaluate import decoded_codes, evaluate_images, real_embedding, real_split, training_distance
from genforge.metrics.extractors import ClassifierExtractor, get_extractor
from genforge.metrics.feature_net import load_feature_net, shipped_feature_nets
from genforge.metrics.fid import FID
from genforge.metrics.nll import importance_log_likelihood
from genforge.metrics.train_features import accuracy

CARD_TARGETS = {"mnist": 0.99, "fashion-mnist": 0.91}


@pytest.fixture(scope="module")
def mnist_test():
    from genforge.data import load_dataset
    return load_dataset("mnist", "test")


@pytest.mark.parametrize("dataset", list(CARD_TARGETS))
def test_shipped_feature_nets_load_and_meet_their_targets(dataset):
    assert dataset in shipped_feature_nets()
    net, card = load_feature_net(dataset)
    assert card["test_accuracy"] >= CARD_TARGETS[dataset]
    assert card["command"].startswith("genforge eval train-features") and "seed" in card["training"]
    feats = ClassifierExtractor(dataset).embed(torch.zeros(3, 1, 28, 28, dtype=torch.uint8))
    assert feats.features.shape == (3, card["config"]["feature_dim"]) and feats.probs.shape == (3, 10)


@pytest.mark.slow
@pytest.mark.parametrize("dataset", list(CARD_TARGETS))
def test_shipped_feature_net_accuracy_matches_its_card(dataset):
    from genforge.data import load_dataset
    net, card = load_feature_net(dataset)
    assert accuracy(net, load_dataset(dataset, "test")) == pytest.approx(card["test_accuracy"], abs=2e-4)


def test_fid_grows_as_real_images_are_noised_and_blurred(mnist_test):
    extractor = ClassifierExtractor("mnist")
    real = real_embedding(extractor, "mnist", "test")
    x = mnist_test.images[:2000].float() / 255
    gen = torch.Generator().manual_seed(0)

    def fid_of(images):
        fid = FID()
        fid.update(real.features, real=True)
        fid.update(extractor.embed(images.clamp(0, 1)).features, real=False)
        return fid.compute()

    noised = [fid_of(x + s * torch.randn(x.shape, generator=gen)) for s in (0.0, 0.1, 0.2, 0.4)]
    # noised[0] is not 0: FID is biased upward for a set of 2000 (about 12 here, 2.3 at 10k).
    assert noised[0] < 0.1 * noised[1] and all(a < b for a, b in zip(noised, noised[1:])), noised
    kernels = [torch.ones(1, 1, k, k) / k ** 2 for k in (1, 3, 5)]
    blurred = [fid_of(F.conv2d(x, w, padding=w.shape[-1] // 2)) for w in kernels]
    assert all(a < b for a, b in zip(blurred, blurred[1:])), blurred


def test_real_images_score_like_real_images_and_one_class_covers_one(mnist_test):
    result = evaluate_images(mnist_test.images[:3000], "mnist")
    assert result["precision"] > 0.7 and result["recall"] > 0.7 and result["classes_covered"] == 10
    assert result["classifier_score"] > 9
    threes = mnist_test.images[mnist_test.labels == 3]
    one = evaluate_images(threes, "mnist")
    assert one["classes_covered"] == 1 and one["class_kl"] > 1.5
    assert one["fid"] > 50 * result["fid"] and one["recall"] < 0.3


def test_wrong_images_and_missing_networks_are_clear_errors():
    with pytest.raises(GenforgeError, match="no feature network for 'cifar10'"):
        load_feature_net("cifar10")
    with pytest.raises(GenforgeError, match="unknown feature network 'vgg'"):
        get_extractor("vgg", "mnist")
    try:
        get_extractor("inception", "mnist")
    except GenforgeError as e:  # the usual case here: no torch-fidelity, or no weights offline
        assert "torch-fidelity" in str(e) or "pt_inception-2015-12-05" in str(e)
    with pytest.raises(GenforgeError, match="cannot be judged"):
        evaluate_images(torch.zeros(4, 3, 32, 32, dtype=torch.uint8), "mnist")


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, mnist_train):
    out = tmp_path_factory.mktemp("vae")
    genforge.train("vae", "mnist", out, steps=300, width=16, latent_dim=8, batch_size=64, progress=False,
                   log_every=25, eval_every=150, eval_n=500)
    return out


def test_train_with_eval_every_logs_and_plots_quality(vae_run):
    rows = [json.loads(line) for line in (vae_run / "evals.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [150, 300]
    assert rows[-1]["fid"] < rows[0]["fid"]  # samples get better as training goes on
    assert (vae_run / "evals.png").exists() and "evals.png" in (vae_run / "report.md").read_text()


def test_eval_command_on_a_run_and_on_images(vae_run, tmp_path, mnist_test, capsys):
    out = tmp_path / "r.json"
    assert main(["eval", str(vae_run), "--n", "600", "--nll-images", "100", "--nll-k", "20",
                 "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "fid" in table and "real floor" in table
    r = json.loads(out.read_text())
    for key in ("fid", "kid", "kid_std", "precision", "recall", "density", "coverage", "classifier_score",
                "classes_covered", "class_kl", "recon_mse", "recon_psnr", "recon_ssim", "nll", "decoded_fid",
                "decoded_recall", "nn_ratio", "copies"):
        assert key in r, key
    assert 0 <= r["decoded_recall"] <= 1 and "perfect latent prior" in table
    assert r["n_fake"] == 600 and r["n_real"] == 10000 and r["floor"]["fid"] < r["fid"]
    assert 0 < r["recon_ssim"] < 1 and 60 < r["nll"] < 400

    npz = tmp_path / "real.npz"
    np.savez(npz, images=mnist_test.images[:500].permute(0, 2, 3, 1).numpy())
    assert main(["eval", "--images", str(npz), "--dataset", "mnist", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["fid"] < r["fid"]  # real digits beat a 300-step VAE

    folder = tmp_path / "pngs"
    assert main(["sample", str(vae_run), "--n", "50", "--out", str(folder)]) == 0
    assert main(["eval", "--images", str(folder), "--dataset", "mnist", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["n_fake"] == 50


def test_more_importance_samples_tighten_the_likelihood(vae_run, mnist_test):
    module = genforge.load(vae_run).module
    x = (mnist_test.images[:200].float() / 255 > 0.5).float()
    ll = {k: float(importance_log_likelihood(module, x, k, torch.Generator().manual_seed(0)).mean())
          for k in (1, 50)}
    assert ll[50] > ll[1]  # the importance-weighted bound rises with k toward log p(x)


class _PixelAutoencoder:
    """The code is the image itself; `blur` makes the decoder smooth, as a VAE's is."""

    def __init__(self, blur: int = 1):
        self.module, self.blur = type("M", (), {"is_conditional": False})(), blur

    def encode(self, x, labels=None):
        return x

    def decode(self, z, labels=None):
        return F.avg_pool2d(z, self.blur, 1, self.blur // 2) if self.blur > 1 else z


def test_decoded_codes_measure_the_decoder():
    # A lossless decoder scores near the real floor; a smoothing one loses recall and FID, the
    # share of an autoencoder's misses no latent prior can win back.
    sharp = decoded_codes(_PixelAutoencoder(), "mnist", n=2000)
    smooth = decoded_codes(_PixelAutoencoder(blur=3), "mnist", n=2000)
    assert sharp["decoded_fid"] < 10 and sharp["decoded_recall"] > 0.75
    assert smooth["decoded_fid"] > 4 * sharp["decoded_fid"] and smooth["decoded_recall"] < sharp["decoded_recall"] - 0.1


def test_training_distance_catches_copied_training_digits(mnist_test):
    copied = training_distance(real_split("mnist", "train", 1000).images, "mnist")
    new = training_distance(mnist_test.images[:1000], "mnist")
    assert copied["nn_ratio"] < 0.01 and copied["copies"] > 0.99, copied
    assert 0.9 < new["nn_ratio"] < 1.1 and new["copies"] < 0.03, new
