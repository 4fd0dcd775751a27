"""CIFAR-10/100 from their binary archives, and the registry's reader hook for other formats.

Every archive here is written by the test in the real format (tar.gz, the real member names,
records of label byte(s) + R, G, B planes of 32x32), with a few records per batch. The registry
checks archives against the published MD5; tests that read a small archive register it under
its own MD5 (`use_archive`), and one test checks that the published MD5 refuses it.
"""

import dataclasses
import io
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from genforge.cli import main
from genforge.data import DATASETS, dataset_info, fetch, load_dataset, load_slice, load_split, locate
from genforge.data import registry
from genforge.data.cifar import md5_of
from genforge.errors import DataError, DataNotFound

C10, C100 = "cifar-10-binary.tar.gz", "cifar-100-binary.tar.gz"
C10_DIR, C100_DIR = "cifar-10-batches-bin", "cifar-100-binary"  # the archives' top folders
C10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


pytestmark = pytest.mark.usefixtures("isolated_data")  # conftest.py: no cache, network or Debian root


def planes(seed: int) -> np.ndarray:
    """A (3, 32, 32) image whose every pixel says which plane, row and column it is (and which image)."""
    y, x = np.mgrid[0:32, 0:32]
    red = (x + 32 * (y % 4) + seed) % 256  # varies along the row
    green = (7 * y + seed) % 256  # varies down the column
    blue = np.full((32, 32), 200 + seed % 50)
    image = np.stack([red, green, blue]).astype(np.uint8)
    image[0, 0, 31] = 1  # top-right of red, bottom-left of blue: one pixel each to pin the layout
    image[2, 31, 0] = 2
    return image


def records(labels: list[tuple[int, ...]], first_seed: int) -> bytes:
    """CIFAR records: the label byte(s), then the R, G and B planes row by row."""
    return b"".join(bytes(label) + planes(first_seed + i).tobytes() for i, label in enumerate(labels))


def write_tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return path


def cifar10_members(per_batch: int = 2, n_test: int = 3, seed: int = 0) -> dict[str, bytes]:
    """Batches 1..5 with labels 0..9 in order across them, images numbered from seed."""
    members = {f"{C10_DIR}/batches.meta.txt": ("\n".join(C10_CLASSES) + "\n\n").encode(),
               f"{C10_DIR}/readme.html": b"<html></html>"}
    for b in range(5):
        labels = [((b * per_batch + i) % 10,) for i in range(per_batch)]
        members[f"{C10_DIR}/data_batch_{b + 1}.bin"] = records(labels, seed + b * per_batch)
    members[f"{C10_DIR}/test_batch.bin"] = records([(9 - i,) for i in range(n_test)], seed + 100)
    return members


def cifar10_archive(folder: Path, **kwargs) -> Path:
    return write_tar(folder / C10, cifar10_members(**kwargs))


def use_archive(monkeypatch, name: str, archive: Path) -> None:
    """Register a small archive's own MD5 in place of the published one."""
    spec = DATASETS[name]
    monkeypatch.setitem(DATASETS, name, dataclasses.replace(spec, md5={archive.name: md5_of(archive)}))


def one_line(error) -> str:
    message = str(error.value)
    assert message and "\n" not in message
    return message


# --- decoding ------------------------------------------------------------------------

def test_cifar10_planes_labels_and_names(tmp_path, monkeypatch):
    archive = cifar10_archive(tmp_path / "d")
    use_archive(monkeypatch, "cifar10", archive)
    train = load_split("cifar10", "train", data_dir=tmp_path / "d")
    assert train.images.shape == (10, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.labels.tolist() == list(range(10))  # batch 1 first, then 2, ... 5
    assert train.classes == C10_CLASSES and train.name == "cifar10"
    for i in range(10):
        assert np.array_equal(train.images[i].numpy(), planes(i))
    # the pinned pixels: red's top-right, blue's bottom-left, nothing else moved
    assert int(train.images[4, 0, 0, 31]) == 1 and int(train.images[4, 2, 31, 0]) == 2
    assert int(train.images[4, 0, 5, 3]) == (3 + 32 * 1 + 4) and int(train.images[4, 1, 5, 3]) == 7 * 5 + 4
    test = load_split("cifar10", "test", data_dir=tmp_path / "d")
    assert test.labels.tolist() == [9, 8, 7] and np.array_equal(test.images[2].numpy(), planes(102))


def test_cifar100_uses_fine_labels_and_their_names(tmp_path, monkeypatch):
    names = DATASETS["cifar100"].classes
    coarse_fine = [(19, 0), (3, 99), (0, 42)]
    archive = write_tar(tmp_path / C100, {
        f"{C100_DIR}/coarse_label_names.txt": b"\n".join(f"coarse{i}".encode() for i in range(20)),
        f"{C100_DIR}/fine_label_names.txt": ("\n".join(names) + "\n").encode(),
        f"{C100_DIR}/train.bin": records(coarse_fine, 5),
        f"{C100_DIR}/test.bin": records([(1, 7)], 60),
    })
    use_archive(monkeypatch, "cifar100", archive)
    train = load_split("cifar100", "train", data_dir=tmp_path)
    assert train.labels.tolist() == [0, 99, 42] and len(train.classes) == 100
    assert train.classes[0] == "apple" and train.classes[99] == "worm" and train.classes == names
    assert np.array_equal(train.images[1].numpy(), planes(6))
    assert load_split("cifar100", "test", data_dir=tmp_path).labels.tolist() == [7]


def test_class_names_come_from_the_archive(tmp_path, monkeypatch):
    members = cifar10_members()
    members[f"{C10_DIR}/batches.meta.txt"] = "\n".join(f"kind {i}" for i in range(10)).encode()
    archive = write_tar(tmp_path / C10, members)
    use_archive(monkeypatch, "cifar10", archive)
    assert load_split("cifar10", "test", data_dir=tmp_path).classes[3] == "kind 3"
    members[f"{C10_DIR}/batches.meta.txt"] = b"just\nthree\nnames\n"
    use_archive(monkeypatch, "cifar10", write_tar(tmp_path / C10, members))
    with pytest.raises(DataError, match="names 3 classes, but cifar10 has 10") as err:
        load_split("cifar10", "test", data_dir=tmp_path)
    one_line(err)


def test_load_dataset_and_slices_give_colour_images(tmp_path, monkeypatch):
    use_archive(monkeypatch, "cifar10", cifar10_archive(tmp_path / "d"))
    data = load_dataset("cifar10", "test", data_dir=tmp_path / "d")
    assert data.images.shape == (3, 3, 32, 32) and data.shape == (3, 32, 32)
    assert load_dataset("CIFAR10", "test", data_dir=tmp_path / "d", image_size=64).images.shape == (3, 3, 64, 64)
    assert load_dataset("cifar10", "test", data_dir=tmp_path / "d", channels=1).images.shape == (3, 1, 32, 32)
    part = load_slice("cifar10:train:2-4", data_dir=tmp_path / "d")
    assert part.labels.tolist() == [2, 3, 4] and np.array_equal(part.images[0].numpy(), planes(2))


def test_decoded_arrays_are_cached(tmp_path, monkeypatch):
    from genforge.data import cifar
    use_archive(monkeypatch, "cifar10", cifar10_archive(tmp_path / "d"))
    first = load_split("cifar10", "train", data_dir=tmp_path / "d")
    assert len(list((tmp_path / "cache" / "arrays").glob("cifar10-train-*.npy"))) == 3  # images, labels, names

    def no_decode(*args):
        raise AssertionError("decoded although the cache was valid")

    monkeypatch.setattr(cifar.CifarBinary, "read", no_decode)
    monkeypatch.setattr(cifar, "md5_of", no_decode)
    second = load_split("cifar10", "train", data_dir=tmp_path / "d")
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert second.classes == C10_CLASSES


# --- where archives are found --------------------------------------------------------

def test_lookup_order_data_dir_env_debian_cache(tmp_path, monkeypatch):
    given, env = tmp_path / "given", tmp_path / "env"
    places = {given / "cifar10": 10, env: 20, registry.DEBIAN_ROOT / "cifar10": 30,
              tmp_path / "cache" / "cifar10": 40}
    md5 = {}
    for folder, seed in places.items():
        md5[seed] = md5_of(cifar10_archive(folder, seed=seed))
    spec = DATASETS["cifar10"]

    def first_red(data_dir=None) -> int:
        archive = locate("cifar10", "test", data_dir)[0]
        monkeypatch.setitem(DATASETS, "cifar10", dataclasses.replace(spec, md5={C10: md5_of(archive)}))
        return int(load_split("cifar10", "test", data_dir).images[0, 2, 0, 0]) - 200  # blue says the seed

    monkeypatch.setenv("GENFORGE_DATA", str(env))
    assert first_red(given) == (10 + 100) % 50
    assert first_red() == (20 + 100) % 50
    monkeypatch.delenv("GENFORGE_DATA")
    assert first_red() == (30 + 100) % 50
    (registry.DEBIAN_ROOT / "cifar10" / C10).unlink()
    assert first_red() == (40 + 100) % 50
    assert locate("cifar10", "test")[0] == tmp_path / "cache" / "cifar10" / C10


def test_not_found_offline_says_where_to_put_it(tmp_path):
    with pytest.raises(DataNotFound) as err:
        locate("cifar10", "train", data_dir=tmp_path / "empty")
    message = one_line(err)
    assert C10 in message and str(tmp_path / "empty") in message and "GENFORGE_DATA" in message
    assert "GENFORGE_OFFLINE" in message and "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz" in message
    with pytest.raises(DataNotFound, match=C100):
        fetch("cifar100")


def test_download_checks_the_md5_and_lands_in_the_cache(tmp_path, monkeypatch):
    archive = cifar10_archive(tmp_path / "served")
    monkeypatch.setenv("GENFORGE_OFFLINE", "0")
    urls = []

    def serve(url, timeout):
        urls.append(url)
        return open(archive, "rb")

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    with pytest.raises(DataNotFound, match="md5 mismatch") as err:  # the published MD5 refuses these bytes
        locate("cifar10", "test")
    one_line(err)
    assert urls == ["https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"]
    assert not (tmp_path / "cache" / "cifar10").exists() or not list((tmp_path / "cache" / "cifar10").iterdir())
    use_archive(monkeypatch, "cifar10", archive)
    assert fetch("cifar10") == {"train": (tmp_path / "cache" / "cifar10" / C10,),
                                "test": (tmp_path / "cache" / "cifar10" / C10,)}
    assert (tmp_path / "cache" / "cifar10" / C10).read_bytes() == archive.read_bytes() and len(urls) == 2
    assert len(load_split("cifar10", "test")) == 3


# --- damaged archives: one line each -------------------------------------------------------

def test_published_md5_refuses_another_archive(tmp_path):
    cifar10_archive(tmp_path)
    with pytest.raises(DataError, match="is not the published c32a1d4ab5d03f1284b67883e8d87530") as err:
        load_split("cifar10", "test", data_dir=tmp_path)
    assert str(tmp_path / C10) in one_line(err)


def test_truncated_record(tmp_path, monkeypatch):
    members = cifar10_members()
    members[f"{C10_DIR}/data_batch_3.bin"] = members[f"{C10_DIR}/data_batch_3.bin"][:-100]
    use_archive(monkeypatch, "cifar10", write_tar(tmp_path / C10, members))
    with pytest.raises(DataError, match="data_batch_3.bin is truncated: 6046 bytes .* 3073-byte records") as err:
        load_split("cifar10", "train", data_dir=tmp_path)
    one_line(err)
    with pytest.raises(DataError, match="truncated"):
        dataset_info("cifar10", data_dir=tmp_path)


@pytest.mark.parametrize("damage", ["cut", "flipped", "garbage", "not gzip"])
def test_corrupt_archive(tmp_path, monkeypatch, damage):
    path = cifar10_archive(tmp_path)
    blob = path.read_bytes()
    if damage == "cut":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "flipped":  # damage inside the deflate stream: gzip's CRC or inflate notices
        middle = len(blob) // 2
        path.write_bytes(blob[:middle] + bytes(b ^ 0xFF for b in blob[middle:middle + 64]) + blob[middle + 64:])
    elif damage == "garbage":
        path.write_bytes(b"\x1f\x8b" + b"this is not deflate data" * 20)
    else:
        path.write_bytes(b"<html>404 not found</html>")
    use_archive(monkeypatch, "cifar10", path)
    with pytest.raises(DataError, match="corrupt archive") as err:
        load_split("cifar10", "train", data_dir=tmp_path)
    assert str(path) in one_line(err) and "fetch it again" in str(err.value)


def test_archive_without_the_members(tmp_path, monkeypatch):
    members = cifar10_members()
    del members[f"{C10_DIR}/test_batch.bin"]
    use_archive(monkeypatch, "cifar10", write_tar(tmp_path / C10, members))
    with pytest.raises(DataError, match="archive lacks test_batch.bin") as err:
        load_split("cifar10", "test", data_dir=tmp_path)
    one_line(err)


# --- the command line --------------------------------------------------------------------

def test_cli_data_info_list_and_fetch(tmp_path, monkeypatch, capsys):
    cifar10_archive(tmp_path / "d" / "cifar10")
    assert main(["data", "--data-dir", str(tmp_path / "d"), "info", "cifar10"]) == 0
    out = capsys.readouterr().out
    assert f"found in: {tmp_path / 'd' / 'cifar10'}" in out and "images:   32x32, 3 channel(s)" in out
    assert "train:    10 images" in out and "test:     3 images" in out and "airplane, automobile" in out
    assert "Learning Multiple Layers of Features from Tiny Images" in out and "Krizhevsky" in out
    assert main(["data", "--data-dir", str(tmp_path / "d"), "list"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert str(tmp_path / "d" / "cifar10") in listed["cifar10"] and "32x32x3  10 classes" in listed["cifar10"]
    assert "100 classes  not found (genforge data fetch cifar100)" in listed["cifar100"]
    assert main(["data", "--data-dir", str(tmp_path / "d"), "fetch", "cifar10"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"train: {tmp_path / 'd' / 'cifar10' / C10}"
    assert main(["data", "fetch", "cifar100"]) == 2
    assert "cifar-100-binary.tar.gz not found" in capsys.readouterr().err


# --- the hook for formats with their own module (emoji) ----------------------------------------

def test_loader_reader_registers_a_data_set_in_one_entry(tmp_path, monkeypatch):
    calls = []

    def load(folder: Path, split: str):
        calls.append((folder, split))
        n = 2 if split == "train" else 1
        images = np.zeros((n, 8, 8, 3), np.uint8)
        images[..., 1] = 50  # green: channels last in, channels first out
        return images, np.arange(n), ["smileys", "animals"]

    def fetch_into(folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "pack.tgz").write_bytes(b"fetched")

    spec = registry.DatasetSpec(name="tiny", shape=(3, 8, 8), classes=[], files={"train": ("pack.tgz",),
                                "test": ("pack.tgz",)}, md5={}, mirrors=[],
                                reader=registry.LoaderReader(load, fetch_into))
    monkeypatch.setitem(DATASETS, "tiny", spec)
    with pytest.raises(DataNotFound, match="pack.tgz not found"):  # offline: no fetch
        load_split("tiny", "train")
    monkeypatch.setenv("GENFORGE_OFFLINE", "0")
    data = load_dataset("tiny", "train")
    assert calls == [(tmp_path / "cache" / "tiny", "train")]
    assert data.images.shape == (2, 3, 8, 8) and data.images[:, 1].unique().tolist() == [50]
    assert data.images[:, 0].unique().tolist() == [0] and data.labels.tolist() == [0, 1]
    assert data.classes == ["smileys", "animals"] and data.name == "tiny"
    assert dataset_info("tiny")["splits"] == {"train": None, "test": None}  # no cheap count: unknown
