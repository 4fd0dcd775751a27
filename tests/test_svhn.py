"""svhn from its MATLAB v5 .mat files, written here with scipy.io.savemat in SVHN's layout:
X (32, 32, 3, N) uint8 and y (N, 1) labels 1..10 where 10 is the digit 0. No network."""

import dataclasses

import numpy as np
import pytest
from scipy.io import savemat

from genforge.cli import main
from genforge.data import DATASETS, dataset_info, load_dataset
from genforge.data.cifar import md5_of
from genforge.errors import DataError, DataNotFound

pytestmark = pytest.mark.usefixtures("isolated_data")  # conftest.py: no cache, network or Debian root


def write_mat(path, labels, seed=0):
    """SVHN-style images: image i is filled with its own colour, pixel (0, 1) marks the layout."""
    n = len(labels)
    x = np.zeros((32, 32, 3, n), np.uint8)
    for i in range(n):
        x[:, :, :, i] = (seed + i, 2 * i, 200)
        x[0, 1, 0, i] = 7  # row 0, column 1, red
    savemat(path, {"X": x, "y": np.array(labels, np.float64).reshape(-1, 1)})  # SVHN stores y as doubles
    return path


@pytest.fixture
def svhn_dir(tmp_path, monkeypatch):
    root = tmp_path / "data" / "svhn"
    root.mkdir(parents=True)
    train = write_mat(root / "train_32x32.mat", [1, 10, 5, 10, 9])
    test = write_mat(root / "test_32x32.mat", [3, 10], seed=50)
    monkeypatch.setenv("GENFORGE_DATA", str(tmp_path / "data"))
    # these small files stand in for the real ones: register their own MD5s
    spec = DATASETS["svhn"]
    monkeypatch.setitem(DATASETS, "svhn", dataclasses.replace(
        spec, md5={train.name: md5_of(train), test.name: md5_of(test)}))
    return root


def test_svhn_loads_with_label_10_as_the_digit_0(svhn_dir):
    train = load_dataset("svhn", "train")
    assert train.images.shape == (5, 3, 32, 32) and train.classes == [str(d) for d in range(10)]
    assert train.labels.tolist() == [1, 0, 5, 0, 9]
    assert train.images[3, :, 5, 5].tolist() == [3, 6, 200]  # (H, W, C, N) -> (N, C, H, W)
    assert int(train.images[0, 0, 0, 1]) == 7 and int(train.images[0, 0, 1, 0]) == 0
    test = load_dataset("svhn", "test")
    assert test.labels.tolist() == [3, 0] and int(test.images[1, 0, 4, 4]) == 51
    info = dataset_info("svhn")
    assert info["splits"] == {"train": 5, "test": 2}  # from the .mat headers
    assert "Netzer" in info["citation"]


def test_the_published_md5_refuses_other_files(svhn_dir, monkeypatch):
    monkeypatch.setitem(DATASETS, "svhn", dataclasses.replace(
        DATASETS["svhn"], md5={"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373"}))
    with pytest.raises(DataError, match="is not the published e26dedcc434d2e4c54c9b2d4a06d8373"):
        load_dataset("svhn", "train")


def test_a_mat_file_without_svhn_images_is_one_clear_error(svhn_dir, monkeypatch):
    path = svhn_dir / "train_32x32.mat"
    savemat(path, {"X": np.zeros((28, 28, 5), np.uint8), "y": np.ones((5, 1))})
    monkeypatch.setitem(DATASETS, "svhn", dataclasses.replace(DATASETS["svhn"], md5={path.name: md5_of(path)}))
    with pytest.raises(DataError, match="not the .32, 32, 3, N. uint8 images of SVHN"):
        load_dataset("svhn", "train")


def test_missing_svhn_names_its_files_and_where_they_are_published(tmp_path, capsys):
    with pytest.raises(DataNotFound, match=r"test_32x32.mat not found in .*http://ufldl.stanford.edu/housenumbers/test_32x32.mat"):
        load_dataset("svhn", "test")
    assert main(["data", "list"]) == 0
    assert any(line.startswith("svhn") and "32x32x3  10 classes  not found" in line
               for line in capsys.readouterr().out.splitlines())
