"""Data loading: IDX files, the data-set registry, image folders, data-set strings."""

import gzip
import hashlib
import logging
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genforge.data import (DATASETS, dataset_info, fetch, load_dataset, load_folder, load_split, locate,
                           parse_slice, read_idx)
from genforge.data import registry
from genforge.data.idx import read_idx_shape, write_idx
from genforge.errors import DataError, DataNotFound, UnknownName

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MNIST_DIR = SHARED_DATA / "mnist"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

needs_mnist = pytest.mark.skipif(not (MNIST_DIR / "t10k-labels-idx1-ubyte.gz").exists(),
                                 reason="MNIST not in shared/data/mnist")


pytestmark = pytest.mark.usefixtures("isolated_data")  # conftest.py: no cache, network or Debian root


def write_split(folder: Path, n: int, value: int, split: str = "test", n_labels: int | None = None) -> None:
    """A fake MNIST split: n images filled with value, labels 0..9 repeating."""
    images_name, labels_name = DATASETS["mnist"].files[split]
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / images_name, np.full((n, 28, 28), value, np.uint8))
    write_idx(folder / labels_name, (np.arange(n if n_labels is None else n_labels) % 10).astype(np.uint8))


# --- IDX files ---------------------------------------------------------------

@needs_mnist
def test_mnist_test_split_loads_with_known_counts():
    data = load_split("mnist", "test", data_dir=MNIST_DIR)
    assert len(data) == 10000 and data.shape == (1, 28, 28)
    assert data.images.dtype == torch.uint8 and data.labels.dtype == torch.int64
    assert data.classes == [str(d) for d in range(10)] and data.name == "mnist"
    assert torch.bincount(data.labels).tolist() == MNIST_TEST_COUNTS
    assert int(data.images.max()) == 255 and int(data.images.min()) == 0


@needs_mnist
def test_uncompressed_content_matches_registry_md5():
    content = gzip.decompress((MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert hashlib.md5(content).hexdigest() == DATASETS["mnist"].md5["t10k-labels-idx1-ubyte"]


@needs_mnist
def test_raw_idx_reads_like_gzip(tmp_path):
    raw = tmp_path / "labels-no-suffix.gz"  # a misleading name: the bytes decide, not the suffix
    raw.write_bytes(gzip.decompress((MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    from_raw, from_gz = read_idx(raw), read_idx(MNIST_DIR / "t10k-labels-idx1-ubyte.gz")
    assert from_raw.shape == (10000,) and np.array_equal(from_raw, from_gz)
    assert read_idx_shape(MNIST_DIR / "t10k-images-idx3-ubyte.gz") == (10000, 28, 28)


def test_write_then_read_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", array)
    back = read_idx(tmp_path / "a")
    assert back.shape == (2, 3, 4) and np.array_equal(back, array) and back.flags.writeable


@pytest.mark.parametrize("change, words", [(-5, "truncated"), (+3, "over-long")])
def test_wrong_length_raises_with_file_and_counts(tmp_path, change, words):
    path = tmp_path / "bad-images-idx3-ubyte"
    write_idx(path, np.zeros((4, 5, 5), np.uint8))
    blob = path.read_bytes()
    path.write_bytes(blob[:change] if change < 0 else blob + b"\0" * change)
    with pytest.raises(DataError, match=words) as err:
        read_idx(path)
    assert path.name in str(err.value) and "100" in str(err.value) and str(100 + change) in str(err.value)


def test_wrong_magic_and_type_raise(tmp_path):
    bad_magic, bad_type = tmp_path / "magic.idx", tmp_path / "float.idx"
    bad_magic.write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x07")
    bad_type.write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00\x00\x00\x00")
    for path in (bad_magic, bad_type):
        with pytest.raises(DataError) as err:
            read_idx(path)
        assert path.name in str(err.value)


def test_corrupt_gzip_raises_data_error(tmp_path):
    garbage, cut = tmp_path / "garbage.gz", tmp_path / "cut.gz"
    garbage.write_bytes(b"\x1f\x8b" + b"this is not deflate data" * 4)
    write_idx(tmp_path / "ok", np.zeros((50, 28, 28), np.uint8))
    cut.write_bytes(gzip.compress((tmp_path / "ok").read_bytes())[:40])
    for path in (garbage, cut):
        with pytest.raises(DataError, match="gzip") as err:
            read_idx(path)
        assert path.name in str(err.value)


def test_label_count_mismatch_raises(tmp_path):
    write_split(tmp_path / "d", 5, 7, n_labels=4)
    with pytest.raises(DataError, match="5 images .* 4 labels"):
        load_split("mnist", "test", data_dir=tmp_path / "d")


def test_wrong_image_size_raises(tmp_path):
    folder = tmp_path / "d"
    write_split(folder, 3, 0)
    write_idx(folder / "t10k-images-idx3-ubyte", np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte"):
        load_split("mnist", "test", data_dir=folder)


# --- registry ---------------------------------------------------------------

def test_search_order_data_dir_then_env_then_debian(tmp_path, monkeypatch):
    given, env, debian = tmp_path / "given", tmp_path / "env", registry.DEBIAN_ROOT / "mnist"
    write_split(given / "mnist", 2, 11)  # data_dir/<name> counts as data_dir
    write_split(env, 3, 22)
    write_split(debian, 4, 33)
    monkeypatch.setenv("GENFORGE_DATA", str(env))
    assert locate("mnist", "test", data_dir=given)[0].parent == given / "mnist"
    assert int(load_split("mnist", "test", data_dir=given).images[0, 0, 0, 0]) == 11
    assert int(load_split("mnist", "test").images[0, 0, 0, 0]) == 22
    monkeypatch.delenv("GENFORGE_DATA")
    assert int(load_split("mnist", "test").images[0, 0, 0, 0]) == 33
    dirs = registry.search_dirs(DATASETS["mnist"], data_dir=given)
    assert dirs[:2] == [given, given / "mnist"] and dirs[-1] == tmp_path / "cache" / "mnist"


def test_nothing_found_offline_says_where_to_put_files(tmp_path):
    with pytest.raises(DataNotFound) as err:
        locate("mnist", "test", data_dir=tmp_path / "empty")
    message = str(err.value)
    assert "GENFORGE_DATA" in message and "--data-dir" in message and "\n" not in message
    assert str(tmp_path / "empty") in message and "t10k-images-idx3-ubyte" in message
    with pytest.raises(DataNotFound, match="apt install dataset-fashion-mnist"):
        locate("fashion-mnist", "train")


@needs_mnist
def test_download_verifies_md5_and_writes_to_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENFORGE_OFFLINE", "0")
    urls = []

    def fake_urlopen(url, timeout):
        urls.append(url)
        return open(MNIST_DIR / url.rsplit("/", 1)[1], "rb")

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    images, labels = locate("mnist", "test")
    assert images == tmp_path / "cache" / "mnist" / "t10k-images-idx3-ubyte.gz" and labels.exists()
    assert urls[0].startswith(DATASETS["mnist"].mirrors[0])
    assert not list((tmp_path / "cache" / "mnist").glob("*.tmp"))

    # a mirror serving other bytes is refused, and the error says why
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout: open(MNIST_DIR / "t10k-labels-idx1-ubyte.gz", "rb"))
    with pytest.raises(DataNotFound, match="md5 mismatch"):
        locate("mnist", "train")
    assert not (tmp_path / "cache" / "mnist" / "train-images-idx3-ubyte.gz").exists()


def test_network_failure_is_caught(monkeypatch):
    monkeypatch.setenv("GENFORGE_OFFLINE", "0")

    def down(url, timeout):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", down)
    with pytest.raises(DataNotFound, match="no route to host"):
        fetch("mnist")


@needs_mnist
def test_array_cache_is_used_and_broken_cache_ignored(tmp_path, monkeypatch):
    first = load_split("mnist", "test", data_dir=MNIST_DIR)
    cached = sorted((tmp_path / "cache" / "arrays").glob("*.npy"))
    assert len(cached) == 2

    def no_decode(path):
        raise AssertionError("decoded although the cache was valid")

    monkeypatch.setattr(registry, "read_idx", no_decode)
    second = load_split("mnist", "test", data_dir=MNIST_DIR)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)

    monkeypatch.setattr(registry, "read_idx", read_idx)
    # a new broken file in its place (the images above map the old one: truncating a mapped file
    # in place would end this process with SIGBUS when they are read)
    cached[0].unlink()
    cached[0].write_bytes(b"not an npy file")
    third = load_split("mnist", "test", data_dir=MNIST_DIR)
    assert torch.equal(first.images, third.images)
    assert np.load(cached[0], allow_pickle=False).shape in {(10000,), (10000, 28, 28)}  # rewritten


def test_replaced_source_is_not_served_from_cache(tmp_path):
    write_split(tmp_path / "d", 3, 5)
    assert int(load_split("mnist", "test", data_dir=tmp_path / "d").images.max()) == 5
    write_split(tmp_path / "d", 4, 9)
    data = load_split("mnist", "test", data_dir=tmp_path / "d")
    assert len(data) == 4 and int(data.images.max()) == 9


def test_dataset_info_reads_headers_only(tmp_path, monkeypatch):
    write_split(tmp_path / "d", 6, 1, split="train")
    write_split(tmp_path / "d", 3, 1, split="test")
    monkeypatch.setattr(registry, "read_idx", lambda path: pytest.fail("decoded the data"))
    info = dataset_info("MNIST", data_dir=tmp_path / "d")
    assert info["splits"] == {"train": 6, "test": 3} and info["found"] == str(tmp_path / "d")
    assert info["shape"] == (1, 28, 28) and len(info["classes"]) == 10 and info["licence"]
    assert dataset_info("mnist")["found"] is None


@pytest.mark.skipif(not FASHION_DIR.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_dir(monkeypatch):
    monkeypatch.setattr(registry, "DEBIAN_ROOT", FASHION_DIR.parent)
    data = load_split("fashion_mnist", "test")
    assert len(data) == 10000 and data.shape == (1, 28, 28) and data.name == "fashion-mnist"
    assert len(data.classes) == 10 and data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    assert torch.bincount(data.labels).tolist() == [1000] * 10
    content = gzip.decompress((FASHION_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert hashlib.md5(content).hexdigest() == DATASETS["fashion-mnist"].md5["t10k-labels-idx1-ubyte"]
    assert dataset_info("fashion-mnist")["splits"] == {"train": 60000, "test": 10000}


def test_unknown_name_lists_known_ones():
    with pytest.raises(UnknownName) as err:
        load_split("cifar", "test")
    assert "mnist" in str(err.value) and "fashion-mnist" in str(err.value)
    with pytest.raises(UnknownName, match="train, test"):
        locate("mnist", "validation")


# --- folders -----------------------------------------------------------------

def save(path: Path, mode: str, color, size=(40, 30), fmt=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color).save(path, format=fmt)


def test_folder_with_class_subfolders(tmp_path):
    save(tmp_path / "dogs" / "b.png", "L", 200)
    save(tmp_path / "cats" / "a.png", "L", 100)
    save(tmp_path / "cats" / "C.PNG", "L", 100, fmt="PNG")  # extension case does not matter
    save(tmp_path / "cats" / ".hidden.png", "L", 0)
    data = load_folder(tmp_path, image_size=16)
    assert data.images.shape == (3, 1, 16, 16) and data.images.dtype == torch.uint8
    assert data.classes == ["cats", "dogs"] and data.labels.tolist() == [0, 0, 1]
    assert data.images[:2].unique().tolist() == [100] and data.images[2].unique().tolist() == [200]


def test_folder_gray_vs_rgb_detection_and_forcing(tmp_path):
    save(tmp_path / "g.png", "L", 50)
    assert load_folder(tmp_path).shape == (1, 32, 32)  # no sub-folders: no labels
    assert load_folder(tmp_path).labels is None
    save(tmp_path / "c.jpg", "RGB", (250, 10, 10), fmt="JPEG")
    rgb = load_folder(tmp_path, image_size=8)
    assert rgb.shape == (3, 8, 8)
    gray_as_rgb, red = rgb.images[1], rgb.images[0].float().mean((1, 2))  # sorted: c.jpg, g.png
    assert gray_as_rgb.unique().tolist() == [50]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60
    assert load_folder(tmp_path, image_size=8, channels=1).shape == (1, 8, 8)


def test_folder_resizes_up_and_down(tmp_path):
    save(tmp_path / "small.png", "RGB", (1, 2, 3), size=(8, 8))
    save(tmp_path / "big.png", "RGB", (1, 2, 3), size=(100, 60))
    data = load_folder(tmp_path, image_size=24)
    assert data.images.shape == (2, 3, 24, 24)
    assert data.images[:, :, 5, 5].tolist() == [[1, 2, 3], [1, 2, 3]]


def test_folder_skips_corrupt_file_and_counts_it(tmp_path, caplog):
    save(tmp_path / "good.png", "L", 10)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    with caplog.at_level(logging.WARNING, logger="genforge.data.folder"):
        data = load_folder(tmp_path)
    assert len(data) == 1
    assert any("skipped 1 unreadable" in r.getMessage() for r in caplog.records)


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.png").write_bytes(b"x")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"not a jpeg")
    for path, words in [(tmp_path / "empty", "no readable"), (tmp_path / "missing", "no such folder"),
                        (tmp_path / "file.png", "is a file"), (tmp_path / "bad", "1 unreadable")]:
        with pytest.raises(DataError, match=words):
            load_folder(path)


# --- data-set strings -----------------------------------------------------------

def test_load_dataset_folder_splits(tmp_path):
    save(tmp_path / "split" / "train" / "a.png", "L", 1)
    save(tmp_path / "split" / "test" / "b.png", "L", 2)
    save(tmp_path / "split" / "test" / "c.png", "L", 3)
    assert len(load_dataset(f"folder:{tmp_path / 'split'}", "test", image_size=8)) == 2
    assert load_dataset(f"folder:{tmp_path / 'split'}", image_size=8).images.unique().tolist() == [1]
    save(tmp_path / "flat" / "a.png", "L", 1)
    assert len(load_dataset(f"folder:{tmp_path / 'flat'}")) == 1
    with pytest.raises(DataError, match="train/ and test/"):
        load_dataset(f"folder:{tmp_path / 'flat'}", "test")


@needs_mnist
def test_load_dataset_resizes_mnist_to_rgb32():
    native = load_split("mnist", "test", data_dir=MNIST_DIR)
    data = load_dataset("MNIST", "test", data_dir=MNIST_DIR, image_size=32, channels=3)
    assert data.images.shape == (10000, 3, 32, 32) and data.images.dtype == torch.uint8
    assert torch.equal(data.images[:, 0], data.images[:, 2]) and torch.equal(data.labels, native.labels)
    # resizing keeps the picture: mean brightness barely moves
    assert abs(data.images.float().mean() - native.images.float().mean()) < 1.5


def test_parse_slice_good():
    assert parse_slice("mnist:test:0-99") == ("mnist", "test", 0, 100)
    assert parse_slice("mnist:test") == ("mnist", "test", 0, None)
    assert parse_slice("MNIST") == ("mnist", "train", 0, None)
    assert parse_slice("fashion_mnist:train:7") == ("fashion-mnist", "train", 7, 8)
    assert parse_slice("folder:/x/y:test:0-9") == ("folder:/x/y", "test", 0, 10)
    assert parse_slice("folder:C:/imgs") == ("folder:C:/imgs", "train", 0, None)


@pytest.mark.parametrize("spec, error", [
    ("", DataError), ("mnist:test:9-0", DataError), ("mnist:test:a-b", DataError),
    ("mnist:test:0-9:x", DataError), ("mnist:val", UnknownName), ("stl10:test", UnknownName),
    ("folder:", DataError),
])
def test_parse_slice_bad(spec, error):
    with pytest.raises(error) as err:
        parse_slice(spec)
    assert "\n" not in str(err.value) and str(err.value)
