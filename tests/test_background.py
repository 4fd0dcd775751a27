"""The background option: the colour that emoji's and a folder's transparency is composited onto,
from load_dataset, `genforge data info/fetch --background` and `genforge train --background`, kept
in the run's config.json so that what reads the run's data again reads it on the same colour.

Emoji here are the small stand-in packages of test_emoji.py (pinned by their own sha512), put
where the lookup order finds them; nothing touches the network."""

import json

import numpy as np
import pytest
from PIL import Image

import genforge
from genforge.api import training_set
from genforge.cli import main
from genforge.data import load_dataset
from genforge.data.emoji import VENDORS, Vendor, tarball_path
from genforge.edit.inputs import read_images
from genforge.errors import DataError
from test_emoji import TARBALLS, _sri  # the stand-in packages and their hashes

pytestmark = pytest.mark.usefixtures("isolated_data")  # conftest.py: no cache, network or Debian root

CLEAR = (20, 50)  # a pixel every stand-in emoji leaves fully transparent (row, column)
HALF = (4, 4)  # inside the half-transparent (alpha 128) red square


@pytest.fixture
def emoji_dir(tmp_path, monkeypatch):
    return install_stand_in_emoji(tmp_path / "data", monkeypatch)


def install_stand_in_emoji(root, monkeypatch):
    """The stand-in packages where the lookup order finds them (root/emoji, GENFORGE_DATA=root)."""
    for vendor, data in TARBALLS.items():
        monkeypatch.setitem(VENDORS, vendor, Vendor(VENDORS[vendor].package, VENDORS[vendor].licence, True,
                                                    _sri(data)))
        path = tarball_path(root / "emoji", vendor)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    monkeypatch.setenv("GENFORGE_DATA", str(root))
    return root


def pixel(data, where) -> list[int]:
    return data.images[0, :, where[0], where[1]].tolist()


def test_load_dataset_passes_the_background_to_emoji(emoji_dir):
    white, default = load_dataset("emoji", "test", background="white"), load_dataset("emoji", "test")
    assert pixel(white, CLEAR) == pixel(default, CLEAR) == [255, 255, 255]
    assert pixel(load_dataset("emoji", "test", background="black"), CLEAR) == [0, 0, 0]
    assert pixel(load_dataset("emoji", "test", background="0,128,255"), CLEAR) == [0, 128, 255]
    assert pixel(load_dataset("emoji", "test", background="#ff0000"), CLEAR) == [255, 0, 0]
    # half transparency blends with the background: red at alpha 128 over black is half red
    red, green, blue = pixel(load_dataset("emoji", "test", background=(0, 0, 0)), HALF)
    assert 126 <= red <= 130 and green == blue == 0
    # what is opaque does not change
    assert pixel(white, (40, 8)) == pixel(load_dataset("emoji", "test", background="black"), (40, 8))


def test_a_background_for_a_data_set_without_transparency_is_refused():
    for name in ("mnist", "cifar10", "celeba64", "svhn"):
        with pytest.raises(DataError, match="has no transparency, so a background colour changes nothing"):
            load_dataset(name, "train", background="black")
    with pytest.raises(DataError, match="unknown background colour 'mauvish'"):
        load_dataset("emoji", "train", background="mauvish")


def test_data_info_and_fetch_take_the_background(emoji_dir, capsys):
    assert main(["data", "info", "emoji", "--background", "black"]) == 0
    assert "background: black (transparent pixels are composited onto it)" in capsys.readouterr().out
    assert main(["data", "fetch", "emoji", "--background", "#000000"]) == 0
    out = capsys.readouterr().out
    assert "test:" in out and "images decoded onto #000000" in out
    assert main(["data", "info", "mnist", "--background", "black"]) == 2
    assert "mnist has no transparency, so --background does not apply to it" in capsys.readouterr().err
    assert main(["data", "info", "emoji", "--background", "300,0,0"]) == 2
    assert "unknown background colour '300,0,0'" in capsys.readouterr().err


def tiny_train(args, out):
    return main(["train", "--model", "vae", "--set", "width=4", "--set", "latent_dim=2", "--batch-size", "8",
                 "--steps", "1", "--prior", "none", "--no-progress", "--out", str(out), *args])


def test_a_run_keeps_its_background_for_everything_that_reads_its_data(emoji_dir, tmp_path):
    out = tmp_path / "run"
    assert tiny_train(["--dataset", "emoji", "--image-size", "32", "--background", "black"], out) == 0
    data = json.loads((out / "config.json").read_text())["data"]
    assert data["background"] == "black" and data["image_size"] == 32
    model = genforge.load(out)
    assert pixel(training_set(model), (10, 25)) == [0, 0, 0]  # CLEAR at 32x32
    inputs = read_images("emoji:test:0-1", model.image_shape, background=data["background"])
    assert pixel(inputs, (10, 25)) == [0, 0, 0]
    # --resume reads the stored background, not the default
    assert main(["train", "--resume", "--steps", "2", "--prior", "none", "--no-progress", "--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["data"]["background"] == "black"
    # a run without --background on emoji stores white; one on MNIST stores none
    white = tmp_path / "white"
    assert tiny_train(["--dataset", "emoji", "--image-size", "32"], white) == 0
    assert json.loads((white / "config.json").read_text())["data"]["background"] == "white"


def test_a_folder_of_transparent_pngs_trains_on_the_background_asked_for(tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(8):
        rgba = np.zeros((40, 40, 4), np.uint8)
        rgba[10:30, 10:30] = (200, 20 * i, 0, 255)  # an opaque square on a clear ground
        Image.fromarray(rgba, "RGBA").save(folder / f"{i}.png")
    out = tmp_path / "run"
    assert tiny_train(["--dataset", f"folder:{folder}", "--image-size", "16", "--background", "0,255,0"], out) == 0
    assert json.loads((out / "config.json").read_text())["data"]["background"] == "0,255,0"
    images = training_set(genforge.load(out))
    assert pixel(images, (0, 0)) == [0, 255, 0] and pixel(images, (8, 8))[0] == 200
    assert tiny_train(["--dataset", "mnist", "--background", "black"], tmp_path / "mnist") == 2
