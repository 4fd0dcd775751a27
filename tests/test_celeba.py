"""celeba64: CelebA's aligned photos from a zip or folder, centre-cropped and resized with PIL.

The tests write small stand-ins in CelebA's layout: 178x218 JPEGs named 000001.jpg, ..., an
img_align_celeba.zip or img_align_celeba/ folder of them, and where a test needs them
list_eval_partition.txt and list_attr_celeba.txt in the published formats. No network.
"""

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genforge.cli import main
from genforge.data import dataset_info, load_dataset
from genforge.data import celeba
from genforge.errors import DataError, DataNotFound, UnknownName

pytestmark = pytest.mark.usefixtures("isolated_data")  # conftest.py: no cache, network or Debian root

N = 12
W, H = 178, 218
ATTRS = ["5_o_Clock_Shadow", "Male", "Smiling"]  # a few of the 40 columns: the format allows any number


def photo(i: int) -> Image.Image:
    """A 178x218 photo: blue outside the centre 140x140 square, a red-green gradient inside it
    that differs from photo to photo."""
    pixels = np.zeros((H, W, 3), np.uint8)
    pixels[...] = (20, 40, 230)
    y, x = np.mgrid[0:140, 0:140]
    pixels[39:179, 19:159, 0] = 255 - (i * 9) % 60
    pixels[39:179, 19:159, 1] = (x * 255 // 139 + 3 * i) % 256
    pixels[39:179, 19:159, 2] = y * 100 // 139
    return Image.fromarray(pixels)


def jpeg(i: int) -> bytes:
    out = io.BytesIO()
    photo(i).save(out, "JPEG", quality=95)
    return out.getvalue()


def names(n: int = N) -> list[str]:
    return [f"{i + 1:06d}.jpg" for i in range(n)]


def write_folder(root: Path, n: int = N) -> Path:
    folder = root / "img_align_celeba"
    folder.mkdir(parents=True)
    for i, name in enumerate(names(n)):
        (folder / name).write_bytes(jpeg(i))
    return folder


def write_zip(root: Path, n: int = N) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "img_align_celeba.zip"
    with zipfile.ZipFile(path, "w") as z:  # stored, as the published zip's JPEGs are
        z.writestr("img_align_celeba/", b"")
        for i, name in enumerate(names(n)):
            z.writestr(f"img_align_celeba/{name}", jpeg(i))
    return path


def write_partition(root: Path, n: int = N) -> dict[str, list[str]]:
    """Images 1-8 train, 9-10 valid, 11-12 test (in the official file's format)."""
    split = {name: (0 if i < 8 else 1 if i < 10 else 2) for i, name in enumerate(names(n))}
    (root / "list_eval_partition.txt").write_text("".join(f"{k} {v}\n" for k, v in split.items()))
    return {s: [k for k, v in split.items() if v == code] for code, s in enumerate(("train", "valid", "test"))}


def smiling(i: int) -> bool:
    return i % 3 == 0


def write_attributes(root: Path, n: int = N) -> None:
    lines = [str(n), " ".join(ATTRS)]
    for i, name in enumerate(names(n)):
        values = ["-1", "1" if i % 2 else "-1", "1" if smiling(i) else "-1"]
        lines.append(f"{name}  " + " ".join(f"{v:>2}" for v in values))  # the file aligns with spaces
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")


def expected(i: int, size: int) -> np.ndarray:
    """What genforge should make of photo i: the JPEG decoded by PIL, its centre 140x140
    (left 19, top 39) resized with Lanczos, as (3, size, size)."""
    with Image.open(io.BytesIO(jpeg(i))) as im:
        crop = im.convert("RGB").crop((19, 39, 159, 179)).resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(crop).transpose(2, 0, 1)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("GENFORGE_DATA", str(root))
    return root


def test_a_folder_loads_with_the_official_partition_and_an_attribute_as_label(data_dir):
    write_folder(data_dir / "celeba64")
    split = write_partition(data_dir / "celeba64")
    write_attributes(data_dir / "celeba64")
    train = load_dataset("celeba64", "train")
    assert train.images.shape == (8, 3, 64, 64) and train.images.dtype == torch.uint8
    assert train.classes == ["not Smiling", "Smiling"] and train.name == "celeba64"
    assert train.labels.tolist() == [int(smiling(i)) for i in range(8)]
    for i in (0, 5):
        assert np.array_equal(train.images[i].numpy(), expected(i, 64))
    test = load_dataset("celeba64", "test")
    assert len(test) == len(split["test"]) == 2
    assert np.array_equal(test.images[1].numpy(), expected(11, 64))  # 000012.jpg, the last
    assert len(load_dataset("celeba64", "valid")) == 2
    # the crop: the blue frame outside the centre square is cut away (JPEG's colour blocks and the
    # filter may tint the outermost pixels; inside them it is the red-green square alone)
    inner = train.images[:, :, 3:-3, 3:-3].int()
    assert int(inner[:, 2].max()) <= 150 and int(inner[:, 0].min()) >= 180


def test_the_zip_gives_the_same_pixels_and_image_size_32_resizes_with_pil(data_dir):
    write_zip(data_dir)  # directly in GENFORGE_DATA, not in a celeba64/ sub-folder
    write_partition(data_dir)
    train = load_dataset("celeba64", "train")
    assert train.labels is None and train.classes is None  # no list_attr_celeba.txt: no labels
    assert np.array_equal(train.images[3].numpy(), expected(3, 64))
    small = load_dataset("celeba64", "train", image_size=32)
    assert small.images.shape == (8, 3, 32, 32)
    # decoded from the 140x140 crop by PIL's Lanczos, not shrunk from the 64x64 tensor
    assert np.array_equal(small.images[3].numpy(), expected(3, 32))


def test_the_decoded_cache_is_reused_until_the_source_changes(data_dir, monkeypatch):
    archive = write_zip(data_dir)
    first = load_dataset("celeba64", "test").images.clone()
    cache = Path(os.environ["GENFORGE_CACHE"]) / "celeba"
    assert len(list(cache.glob("*.json"))) == 1 and len(list(cache.glob("*.npy"))) == 1
    decoded = []
    real = celeba._Opener.pixels
    monkeypatch.setattr(celeba._Opener, "pixels", lambda self, name, size: decoded.append(name) or real(self, name, size))
    again = load_dataset("celeba64", "test")
    assert decoded == [] and torch.equal(again.images, first)
    # a replaced zip (one image fewer) is decoded again, and the old entry's array removed
    archive.unlink()
    write_zip(data_dir, n=N - 1)
    every = sum(len(load_dataset("celeba64", s)) for s in ("train", "valid", "test"))
    assert len(decoded) == N - 1 and every == N - 1
    assert len(list(cache.glob("*.npy"))) == 1


def test_without_a_partition_file_the_split_is_seeded_and_data_info_says_so(data_dir, capsys):
    write_folder(data_dir, n=40)
    sizes = {s: len(load_dataset("celeba64", s)) for s in ("train", "valid", "test")}
    assert sum(sizes.values()) == 40 and sizes["train"] > sizes["valid"] + sizes["test"]
    by_hash = [n for n in names(40) if celeba.seeded_split(n) == "test"]
    assert sizes["test"] == len(by_hash)
    info = dataset_info("celeba64")
    assert info["splits"] == sizes and info["classes"] == []
    assert "seeded" in info["notes"]["split"] and celeba.SPLIT_SEED in info["notes"]["split"]
    assert main(["data", "info", "celeba64"]) == 0
    out = capsys.readouterr().out
    assert "seeded" in out and "labels:" in out and f"found in: {data_dir}" in out


def test_data_list_and_info_show_the_official_split_and_the_labels(data_dir, capsys):
    write_zip(data_dir / "celeba64")
    write_partition(data_dir / "celeba64")
    write_attributes(data_dir / "celeba64")
    assert main(["data", "list"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("celeba64"))
    assert "64x64x3" in line and "2 classes" in line and str(data_dir / "celeba64") in line
    assert main(["data", "info", "celeba64"]) == 0
    out = capsys.readouterr().out
    assert "train:    8 images" in out and "valid:    2 images" in out and "test:     2 images" in out
    assert "official partition" in out and "not Smiling, Smiling" in out


def test_another_attribute_can_be_the_label(data_dir):
    write_folder(data_dir)
    write_attributes(data_dir)
    data = celeba.load_celeba(data_dir, "train", attribute="Male")
    assert data.classes == ["not Male", "Male"]
    order = [n for n in names() if celeba.seeded_split(n) == "train"]
    assert data.labels.tolist() == [int(names().index(n) % 2) for n in order]
    with pytest.raises(UnknownName, match="unknown CelebA attribute 'Bald'; known: 5_o_Clock_Shadow, Male, Smiling"):
        celeba.load_celeba(data_dir, "train", attribute="Bald")


def test_missing_celeba_says_where_to_put_it_and_where_to_get_it(data_dir, capsys):
    with pytest.raises(DataNotFound) as caught:
        load_dataset("celeba64", "train")
    message = str(caught.value)
    assert "img_align_celeba.zip or an img_align_celeba/ folder" in message
    assert str(data_dir / "celeba64") in message and "genforge cannot download it" in message
    assert celeba.PAGE in message and "--data-dir DIR" in message
    assert main(["data", "fetch", "celeba64"]) == 2
    assert "genforge: error: celeba64 train:" in capsys.readouterr().err


def test_bad_files_are_one_clear_error(data_dir):
    write_folder(data_dir)
    (data_dir / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg train\n")
    with pytest.raises(DataError, match=r"list_eval_partition.txt:2: expected a file name and 0, 1 or 2"):
        load_dataset("celeba64", "train")
    (data_dir / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    with pytest.raises(DataError, match="does not list 11 of the images, e.g. 000002.jpg"):
        load_dataset("celeba64", "train")
    (data_dir / "list_eval_partition.txt").unlink()
    (data_dir / "img_align_celeba" / "000004.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="000004.jpg is not a readable JPEG"):
        load_dataset("celeba64", "train")
    assert not list((Path(os.environ["GENFORGE_CACHE"]) / "celeba").glob("*.npy"))  # nothing half-built kept
    with pytest.raises(DataError, match="CelebA image size must be a whole number of pixels from 1 to 140"):
        load_dataset("celeba64", "train", image_size=200)


def test_a_conditional_model_trains_on_celeba_with_its_attribute_labels(data_dir, tmp_path):
    write_folder(data_dir)
    write_attributes(data_dir)
    out = tmp_path / "run"
    assert main(["train", "--model", "cvae", "--dataset", "celeba64", "--image-size", "32", "--set", "width=4",
                 "--batch-size", "4", "--steps", "2", "--prior", "none", "--no-progress", "--out", str(out)]) == 0
    import json
    data = json.loads((out / "config.json").read_text())["data"]
    assert data["image_size"] == 32 and data["channels"] == 3 and data["classes"] == ["not Smiling", "Smiling"]
