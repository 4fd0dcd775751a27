"""Detection on colour images: a detector trained briefly on a colour folder separates real
pictures from a colour VAE's and DCGAN's samples and pastes (an untrained one does not), its
spectra read luminance and chroma, augmentations and self-blends keep colour, heatmaps of colour
pictures keep their colours, and a grey detector refuses colour input (and a colour one grey
input) in one line.

The images are synthetic (no network in CI): a disc and a bar of random colours on white, the
kind of picture emoji are, written as PNG files into a folder with train/ and test/ splits.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import genforge
from genforge.cli import main
from genforge.data import load_dataset
from genforge.detect import Detector, DetectorConfig, DetectTrainConfig, load_detector, train_detector
from genforge.detect.augment import PERTURBATIONS, augment, jpeg, quantise
from genforge.detect.detector import log_spectrum, save_detector, spectral_planes
from genforge.detect.evaluate import separation
from genforge.detect.fakes import SELF_BLEND, model_fakes, recoloured, self_blends
from genforge.detect.heatmap import overlay
from genforge.detect.inputs import is_colour
from genforge.detect.spectral import SpectralBaseline, radial_spectrum
from genforge.errors import GenforgeError

TINY = dict(steps=40, batch_size=32, progress=False, report=False)


def _pictures(n: int, size: int, seed: int) -> np.ndarray:
    """uint8 (n, size, size, 3): a disc of one random colour over a bar of another, on white."""
    g = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size] / size
    out = np.ones((n, size, size, 3))
    for i in range(n):
        cy, cx = g.uniform(0.3, 0.7, 2)
        r = g.uniform(0.15, 0.3)
        disc = 1 / (1 + np.exp(-(r - np.hypot(ys - cy, xs - cx)) * size))
        top = g.uniform(0, 0.7)
        bar = ((ys > top) & (ys < top + 0.15)).astype(float)
        for shape in (bar, disc):
            out[i] = out[i] * (1 - shape[..., None]) + g.uniform(0, 1, 3) * shape[..., None]
    return (out * 255).round().astype(np.uint8)


def _write(folder, pictures):
    folder.mkdir(parents=True)
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(folder / f"{i:04d}.png")


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("colour")
    _write(root / "train", _pictures(512, 32, seed=0))
    _write(root / "test", _pictures(160, 32, seed=1))
    return root


@pytest.fixture(scope="module")
def colour_runs(colour_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    data = f"folder:{colour_data}"
    genforge.train("vae", data, root / "vae", image_size=32, width=8, latent_dim=8, prior="none", **TINY)
    genforge.train("dcgan", data, root / "dcgan", image_size=32, g_width=8, d_width=8, **TINY)
    return [root / "vae", root / "dcgan"]


@pytest.fixture(scope="module")
def colour_detector(colour_data, colour_runs, tmp_path_factory):
    out = tmp_path_factory.mktemp("det")
    real = load_dataset(f"folder:{colour_data}", "train", image_size=32)
    config = DetectTrainConfig(steps=150, batch_size=32, width=8, fakes_per_source=192)
    train_detector(real, colour_runs, out, config, real_spec=f"folder:{colour_data}:train", progress=False)
    return out


@pytest.fixture(scope="module")
def grey_detector(tmp_path_factory):
    """An untrained grey 28x28 detector saved with a card: enough to be refused colour input."""
    out = tmp_path_factory.mktemp("grey-det")
    torch.manual_seed(0)
    save_detector(Detector(DetectorConfig(width=4)), out, {"threshold": 0.5, "training": {"real": "mnist:train"}})
    return out


def _one_line(capsys, *argv) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("genforge: error: ") and "\n" not in err, err
    return err


def test_colour_detector_separates_real_from_generated_and_pasted(colour_detector, colour_data, colour_runs):
    detector, card = load_detector(colour_detector)
    assert detector.config.in_channels == 3 and detector.config.image_size == 32
    assert card["training"]["fake_sources"] == ["vae:sample", "vae:paste", "dcgan:sample", "dcgan:paste", SELF_BLEND]
    test = load_dataset(f"folder:{colour_data}", "test", image_size=32)
    assert test.shape == (3, 32, 32)
    real = test.images[:80].float() / 255
    probs, maps = detector.predict(real)
    assert probs.shape == (80,) and maps.shape == (80, 1, 32, 32)
    torch.manual_seed(1)
    untrained = Detector(DetectorConfig(in_channels=3, image_size=32, width=8)).eval()
    for run in colour_runs:
        fakes = model_fakes(run, test.subset(torch.arange(80, 160)), 80, seed=77)  # unseen pictures and seeds
        for name in fakes.names:
            images = fakes.of(name).images
            assert images.shape[1:] == (3, 32, 32)
            auc = separation(probs, detector.predict(images)[0])["auc"]
            chance = separation(untrained.predict(real)[0], untrained.predict(images)[0])["auc"]
            if name.endswith(":sample"):
                assert auc > 0.95, (name, auc)
            else:  # a pasted region is a small part of the picture: a weaker bar after 150 steps
                assert auc > 0.8 and auc > chance + 0.15, (name, auc, chance)


def test_spectra_read_luminance_and_chroma():
    grey = torch.rand(4, 1, 32, 32)
    as_rgb = grey.expand(-1, 3, -1, -1)
    planes = spectral_planes(as_rgb)
    assert planes.shape == (4, 3, 32, 32)
    assert torch.allclose(planes[:, :1], grey, atol=1e-5)  # luminance of a grey picture is the picture
    assert planes[:, 1:].abs().max() < 1e-5  # and it has no chroma
    assert torch.allclose(log_spectrum(as_rgb)[:, :1], log_spectrum(grey), atol=1e-4)
    assert log_spectrum(grey).shape == (4, 1, 32, 32)  # a grey detector reads what it always did
    assert radial_spectrum(as_rgb).shape == (4, 3 * 17) and radial_spectrum(grey).shape == (4, 17)
    # A colour cast leaves luminance alone and shows in chroma, which luminance alone would miss.
    x = torch.from_numpy(_pictures(8, 32, seed=3)).permute(0, 3, 1, 2).float() / 255
    tinted = recoloured(x, 0.3, torch.zeros(3))
    assert (spectral_planes(tinted)[:, 0] - spectral_planes(x)[:, 0]).abs().max() < 0.02
    assert log_spectrum(tinted)[:, 1:].sum() < 0.5 * log_spectrum(x)[:, 1:].sum()  # chroma at 0.3 of its size
    baseline = SpectralBaseline().fit(x.repeat(4, 1, 1, 1), recoloured(x, 0.2, torch.zeros(3)).repeat(4, 1, 1, 1))
    assert baseline.score(x).shape == (8,)


def test_perturbations_augmentations_and_self_blends_keep_colour():
    x = torch.from_numpy(_pictures(16, 32, seed=4)).permute(0, 3, 1, 2).float() / 255
    for name, perturb in PERTURBATIONS.items():
        y = quantise(perturb(x))
        assert y.shape == x.shape and 0 <= y.min() and y.max() <= 1, name
        # each channel's mean survives (JPEG keeps colour, blur and resampling only move it about)
        assert (y.mean(dim=(2, 3)) - x.mean(dim=(2, 3))).abs().max() < 0.05, name
    assert (jpeg(x, 75) - x).abs().mean() > 0.001  # it did compress
    assert augment(x, torch.Generator().manual_seed(0), p=1.0).shape == x.shape
    assert torch.allclose(recoloured(x, 1.0, torch.zeros(3)), x, atol=1e-6)
    washed = recoloured(x, 0.0, torch.zeros(3))
    assert (washed.amax(1) - washed.amin(1)).max() < 1e-6  # saturation 0: grey
    real = genforge.data.ImageSet((x * 255).round().to(torch.uint8))
    blends = self_blends(real, 64, seed=0)
    assert blends.images.shape[1:] == (3, 32, 32) and blends.masks.shape[1:] == (1, 32, 32)
    assert 0 < blends.masks.mean() < 1


def test_overlay_keeps_a_colour_picture_and_outlines_the_edit():
    picture = _pictures(1, 32, seed=5)[0]
    edit_map = torch.zeros(1, 32, 32)
    edit_map[:, 8:16, 8:16] = 1.0
    shown = overlay(picture, edit_map)
    assert shown.shape == (128, 128, 3)  # enlarged 4x to be seen
    assert np.array_equal(shown[100:, 100:], np.repeat(np.repeat(picture[25:, 25:], 4, 0), 4, 1))  # colours kept
    assert (shown[40:56, 40:56, 0] > shown[40:56, 40:56, 1]).all()  # red inside the edited box
    assert (shown[..., 2] == 255).sum() > 4 * 16  # its blue outline
    grey = np.repeat(picture.mean(-1, keepdims=True).round().astype(np.uint8), 3, -1)
    assert not is_colour(grey) and is_colour(picture)
    shown_grey = overlay(grey, edit_map)
    assert (shown_grey[100:, 100:, 0] == shown_grey[100:, 100:, 1]).all()  # a grey picture stays grey


def test_cli_judges_colour_files_and_writes_colour_heatmaps(colour_detector, colour_data, colour_runs, tmp_path,
                                                            capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    Image.open(colour_data / "test" / "0000.png").save(folder / "real.png")
    sample = genforge.load(colour_runs[0]).sample(1, seed=3)[0]
    Image.fromarray((sample.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)).save(folder / "vae.png")
    Image.open(colour_data / "test" / "0001.png").resize((48, 48)).save(folder / "big.jpg")
    code = main(["detect", str(colour_detector), str(folder), f"folder:{colour_data}:test:2-3",
                 "--json", str(tmp_path / "v.json"), "--heatmap", str(tmp_path / "maps"),
                 "--sheet", str(tmp_path / "sheet.png")])
    out = capsys.readouterr().out
    assert code == 0, out
    verdicts = {v["image"]: v for v in json.loads((tmp_path / "v.json").read_text())["images"]}
    assert len(verdicts) == 5 and verdicts["big.jpg"]["note"] == "resized 48x48 to 32x32"
    assert verdicts["vae.png"]["verdict"] == "generated/edited"
    maps = sorted((tmp_path / "maps").iterdir())
    assert len(maps) == 5
    real_map = np.asarray(Image.open(tmp_path / "maps" / "real.png"))
    assert real_map.shape == (128, 128, 3) and is_colour(real_map)  # the picture's own colours under the map
    assert Image.open(tmp_path / "maps" / "big.png").size == (48 * 3, 48 * 3)  # the file as read, enlarged
    assert Image.open(tmp_path / "sheet.png").mode in ("RGB", "RGBA")


def test_grey_detector_refuses_colour_input_in_one_line(grey_detector, colour_data, tmp_path, capsys):
    colour_file = tmp_path / "colour.png"
    Image.fromarray(_pictures(1, 28, seed=6)[0]).save(colour_file)
    err = _one_line(capsys, "detect", grey_detector, colour_file)
    assert "colour (3 channels) images but this detector was trained on grey (1 channel) images" in err
    err = _one_line(capsys, "detect", grey_detector, f"folder:{colour_data}:test:0-3")
    assert f"folder:{colour_data}:test:0-3 holds colour (3 channels) images" in err
    np.savez(tmp_path / "colour.npz", images=_pictures(2, 28, seed=7))
    assert "holds colour (3 channels) images" in _one_line(capsys, "detect", grey_detector, tmp_path / "colour.npz")
    detector, _ = load_detector(grey_detector)
    with pytest.raises(GenforgeError, match=r"judges grey \(1 channel\) 28x28 images, not colour \(3 channels\)"):
        detector.predict(torch.rand(2, 3, 28, 28))
    # A grey picture stored as RGB is converted (nothing lost) and judged.
    grey_rgb = tmp_path / "grey-rgb.png"
    Image.fromarray(np.repeat(_pictures(1, 28, seed=8)[0].mean(-1, keepdims=True), 3, -1).astype(np.uint8)) \
        .save(grey_rgb)
    assert main(["detect", str(grey_detector), str(grey_rgb)]) == 0
    assert "converted RGB to L" in capsys.readouterr().out


def test_colour_detector_refuses_grey_input_in_one_line(colour_detector, colour_runs, tmp_path, capsys):
    err = _one_line(capsys, "detect", colour_detector, "mnist:test:0-3")
    assert "mnist:test:0-3 holds grey (1 channel) images but this detector was trained on colour (3 channels)" in err
    grey_file = tmp_path / "grey.png"
    Image.fromarray(np.full((32, 32), 128, np.uint8)).save(grey_file)
    assert "holds grey (1 channel) images" in _one_line(capsys, "detect", colour_detector, grey_file)
    detector, _ = load_detector(colour_detector)
    with pytest.raises(GenforgeError, match=r"judges colour \(3 channels\) 32x32 images, not grey"):
        detector.predict(torch.rand(2, 1, 32, 32))
    err = _one_line(capsys, "detect", "train", "--real", "mnist:train:0-99", "--fake", colour_runs[0],
                    "--out", tmp_path / "det", "--steps", "1")
    assert "--real mnist:train:0-99 holds grey (1 channel) images but the --fake runs make colour (3 channels)" in err


def test_detector_trains_and_judges_at_64(colour_data, tmp_path):
    big = tmp_path / "big"
    _write(big / "train", _pictures(96, 64, seed=9))
    genforge.train("vae", f"folder:{big}", tmp_path / "vae64", image_size=64, width=4, latent_dim=4, prior="none",
                   steps=2, batch_size=16, progress=False, report=False)
    real = load_dataset(f"folder:{big}", "train", image_size=64)
    detector, card = train_detector(real, [tmp_path / "vae64"], tmp_path / "det64",
                                    DetectTrainConfig(steps=3, batch_size=8, width=4, fakes_per_source=16),
                                    progress=False)
    assert (detector.config.in_channels, detector.config.image_size) == (3, 64)
    probs, maps = detector.predict(real.images[:5].float() / 255)
    assert probs.shape == (5,) and maps.shape == (5, 1, 64, 64) and ((0 <= probs) & (probs <= 1)).all()
    assert load_detector(tmp_path / "det64")[1]["config"]["in_channels"] == 3
