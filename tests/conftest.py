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
