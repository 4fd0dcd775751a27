"""Shared test set-up: real MNIST from ../shared/data, no network, a private cache."""

import os
import tempfile
from pathlib import Path

import pytest
import torch

# ../shared/data beside the checkout, unless GENFORGE_DATA names another folder (a GPU machine
# that gets the checkout alone, with the data copied into it).
SHARED_DATA = Path(os.environ.get("GENFORGE_DATA") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def pytest_configure(config):
    # Set in the environment (not monkeypatch) so CLI subprocesses see the same.
    os.environ["GENFORGE_DATA"] = str(SHARED_DATA)
    os.environ["GENFORGE_OFFLINE"] = "1"
    os.environ.setdefault("GENFORGE_CACHE", tempfile.mkdtemp(prefix="genforge-test-cache-"))
    # sampling, editing and the server sign what they write with a key made on first use in the
    # config folder: tests make theirs in a private one, never in the user's ~/.config
    os.environ["GENFORGE_CONFIG"] = tempfile.mkdtemp(prefix="genforge-test-config-")
    torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def mnist_train():
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip("MNIST not in ../shared/data/mnist")
    from genforge.data import load_dataset
    return load_dataset("mnist", "train")


@pytest.fixture(scope="session")
def mnist_small(mnist_train):
    """2048 real MNIST training digits: enough to learn from, quick to train on."""
    return mnist_train.subset(torch.arange(2048))


@pytest.fixture
def isolated_data(tmp_path, monkeypatch):
    """No real cache, no network, no stray GENFORGE_DATA, an empty Debian root: for tests of the
    data-set lookup (use with `pytestmark = pytest.mark.usefixtures("isolated_data")`)."""
    import urllib.request

    from genforge.data import registry
    monkeypatch.setenv("GENFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("GENFORGE_OFFLINE", "1")
    monkeypatch.delenv("GENFORGE_DATA", raising=False)
    monkeypatch.setattr(registry, "DEBIAN_ROOT", tmp_path / "debian")

    def no_network(*args, **kwargs):
        raise AssertionError("a test tried to use the network")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, mnist_train):
    """A 2-step vae run directory with a tiny network: a real run for CLI checks, in seconds."""
    from genforge.cli import main
    out = tmp_path_factory.mktemp("run")
    assert main(["train", "--model", "vae", "--dataset", "mnist", "--set", "width=4", "--set", "latent_dim=2",
                 "--batch-size", "16", "--steps", "2", "--prior", "none", "--no-progress", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="session")
def serve_runs(tmp_path_factory, mnist_train):
    """What the server tests load: a conditional autoencoder (cvae: sample, encode, every edit), a
    conditional GAN (cgan: sample, latent search, directions) and a detector trained on both, each
    trained a few steps with small networks, so a session builds them in seconds. {name: path}."""
    from genforge.cli import main
    root = tmp_path_factory.mktemp("serve")
    small = ["--dataset", "mnist", "--batch-size", "32", "--steps", "4", "--no-progress"]
    assert main(["train", "--model", "cvae", "--set", "width=8", "--set", "latent_dim=8", *small,
                 "--prior", "none", "--out", str(root / "cvae")]) == 0
    assert main(["train", "--model", "cgan", "--set", "g_width=8", "--set", "d_width=8", *small, "--out", str(root / "cgan")]) == 0
    assert main(["detect", "train", "--real", "mnist:train:0-255", "--fake", str(root / "cvae"), str(root / "cgan"),
                 "--out", str(root / "detector"), "--steps", "2", "--batch-size", "16", "--width", "4",
                 "--fakes-per-source", "32", "--no-progress"]) == 0
    return {"cvae": root / "cvae", "cgan": root / "cgan", "detector": root / "detector"}
