"""Detection on real MNIST digits: a briefly trained detector separates real digits from a VAE's
and a GAN's samples and pastes (a random-weights one does not), its edit map points at the
pasted regions, and `genforge detect` judges folders with bad files in them."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import genforge
from genforge.cli import main
from genforge.data import load_dataset
from genforge.detect import Detector, DetectorConfig, DetectTrainConfig, load_detector, train_detector
from genforge.detect.detector import save_detector, tones
from genforge.detect.augment import PERTURBATIONS, augment, jpeg, quantise
from genforge.detect.evaluate import localisation, separation
from genforge.detect.fakes import SELF_BLEND, changed_pixels, make_fakes, model_fakes, random_masks, self_blends
from genforge.detect.softness import is_soft, sharpness, sharpness_floor
from genforge.detect.spectral import SpectralBaseline, discriminator_score
from genforge.detect.train import edit_map_weights

TINY = dict(steps=100, batch_size=32, progress=False, report=False)


@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_train):
    root = tmp_path_factory.mktemp("runs")
    genforge.train("vae", "mnist", root / "vae", width=8, latent_dim=8, prior="none", **TINY)
    genforge.train("dcgan", "mnist", root / "dcgan", g_width=8, d_width=8, **TINY)
    return [root / "vae", root / "dcgan"]


@pytest.fixture(scope="module")
def detector_dir(runs, mnist_small, tmp_path_factory):
    out = tmp_path_factory.mktemp("det")
    config = DetectTrainConfig(steps=500, batch_size=32, width=8, fakes_per_source=256)
    train_detector(mnist_small, runs, out, config, real_spec="mnist:train:0-2047", progress=False)
    return out


@pytest.fixture(scope="module")
def held_out(runs):
    """Real test digits and fakes made from other test digits and other seeds than training's."""
    test = load_dataset("mnist", "test")
    real = test.images[:300].float() / 255
    fakes = {run.name: model_fakes(run, test.subset(torch.arange(300, 600)), 200, seed=77) for run in runs}
    return real, fakes


def _verdict_accuracy(real_probs, fake_probs):
    return 0.5 * ((real_probs < 0.5).float().mean() + (fake_probs >= 0.5).float().mean()).item()


def test_trained_detector_separates_real_from_generated_and_random_weights_do_not(detector_dir, held_out):
    real, fakes = held_out
    trained, card = load_detector(detector_dir)
    # Random features can rank whole generated images apart (a generator's background is never pure
    # black, and the tone channels show that to any filter), but a pasted region only by chance, and
    # an untrained detector's verdicts stay near a coin toss.
    untrained = []
    for seed in range(5):
        torch.manual_seed(seed)
        untrained.append(Detector(DetectorConfig(width=8)).eval())
    real_probs = [trained.predict(real)[0]] + [d.predict(real[:150])[0] for d in untrained]
    for run_fakes in fakes.values():
        for name in run_fakes.names:
            images = run_fakes.of(name).images
            fake_probs = [trained.predict(images)[0]] + [d.predict(images[:100])[0] for d in untrained]
            assert separation(real_probs[0], fake_probs[0])["auc"] > 0.95, name
            assert _verdict_accuracy(real_probs[0], fake_probs[0]) > 0.9, name
            chance = [(separation(r, f)["auc"], _verdict_accuracy(r, f))
                      for r, f in zip(real_probs[1:], fake_probs[1:])]
            auc, accuracy = np.mean(chance, axis=0)
            assert accuracy < 0.7, (name, chance)
            if name.endswith(":paste"):
                assert 0.25 < auc < 0.75, (name, chance)
    assert card["training"]["fake_sources"] == ["vae:sample", "vae:paste", "dcgan:sample", "dcgan:paste", SELF_BLEND]
    assert card["threshold"] == 0.5 and card["validation"]["detection"]["vae:sample"]["auc"] > 0.95


def test_detector_survives_the_benchmark_perturbations(detector_dir, held_out):
    real, fakes = held_out
    detector, _ = load_detector(detector_dir)
    samples = fakes["vae"].of("vae:sample").images
    for name, perturb in PERTURBATIONS.items():
        auc = separation(detector.predict(perturb(real))[0], detector.predict(perturb(samples))[0])["auc"]
        assert auc > 0.85, (name, auc)


def test_edit_map_is_high_where_a_paste_changed_the_image_only(detector_dir, held_out):
    detector, _ = load_detector(detector_dir)
    pastes = held_out[1]["dcgan"].of("dcgan:paste")
    maps = detector.predict(pastes.images)[1]
    inside = maps[pastes.masks > 0.5].mean()
    outside = maps[pastes.masks < 0.5].mean()
    assert inside > outside + 0.3, (inside, outside)
    assert localisation(maps, pastes.masks)["pixel_auc"] > 0.85
    real_maps = detector.predict(held_out[0])[1]
    assert real_maps.mean() < 0.2


def test_changed_truth_marks_only_the_pixels_a_paste_altered(runs):
    test = load_dataset("mnist", "test").subset(torch.arange(600, 700))
    region = model_fakes(runs[0], test, 100, seed=9, truth="region").of("vae:paste")
    changed = model_fakes(runs[0], test, 100, seed=9).of("vae:paste")  # the default
    assert torch.equal(region.images, changed.images)  # one paste, two definitions of its mask
    # Changes lie in the region or the reach of its feathered seam (a blur of sigma 1: 3 pixels).
    reach = torch.nn.functional.max_pool2d(region.masks, 7, stride=1, padding=3)
    assert changed.masks.sum() > 0.5 * region.masks.sum() and (changed.masks <= reach).all()
    assert not torch.equal(changed.masks, region.masks)
    assert (changed.masks.flatten(1).amax(1) == 1).all()  # a paste that changed nothing is no edit: left out
    original = torch.zeros(1, 1, 4, 4)
    edited = original.clone()
    edited[0, 0, 0, 0], edited[0, 0, 1, 1] = 1 / 255, 3 / 255  # one grey level is noise; three are an edit
    assert changed_pixels(edited, original).nonzero().tolist() == [[0, 0, 1, 1]]
    with pytest.raises(genforge.GenforgeError, match="edit truth"):
        model_fakes(runs[0], test, 4, truth="everything")


def test_self_blends_change_real_images_only_where_their_masks_say(runs):
    test = load_dataset("mnist", "test").subset(torch.arange(700, 900))
    blends = self_blends(test, 200, seed=4)
    assert torch.equal(blends.images, self_blends(test, 200, seed=4).images)  # seeded
    assert 150 < len(blends) <= 200 and (blends.masks.flatten(1).amax(1) == 1).all()  # an unchanged one is left out
    # Every image is one of the real digits, changed exactly where its mask is 1 (by more than a grey level).
    originals = test.images.float() / 255
    nearest = torch.cdist(blends.images.flatten(1), originals.flatten(1)).argmin(1)
    assert torch.equal(changed_pixels(blends.images, originals[nearest]), blends.masks)
    assert blends.masks.mean() < 0.3  # local edits, not whole images
    fakes = make_fakes(runs[:1], test, 50, seed=1, self_blend=True)
    assert fakes.names == ["vae:sample", "vae:paste", SELF_BLEND] and len(fakes.of(SELF_BLEND)) > 30
    assert make_fakes(runs[:1], test, 50, seed=1).names == ["vae:sample", "vae:paste"]


def test_spectral_baseline_and_discriminator_are_above_chance(runs, mnist_small, held_out):
    real, fakes = held_out
    train_fakes = model_fakes(runs[0], mnist_small, 300, seed=5).of("vae:sample").images
    baseline = SpectralBaseline().fit(mnist_small.images[:600].float() / 255, train_fakes)
    samples = fakes["vae"].of("vae:sample").images
    assert separation(baseline.score(real), baseline.score(samples))["auc"] > 0.8

    gan = genforge.load(runs[1])
    gan_samples = fakes["dcgan"].of("dcgan:sample").images
    assert separation(discriminator_score(gan, real), discriminator_score(gan, gan_samples))["auc"] > 0.6
    with pytest.raises(genforge.GenforgeError, match="no discriminator"):
        discriminator_score(genforge.load(runs[0]), real)


def test_masks_and_augmentation_are_seeded_and_keep_images_valid():
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    masks = random_masks(16, 28, g())
    assert torch.equal(masks, random_masks(16, 28, g()))
    area = masks.mean(dim=(1, 2, 3))
    assert masks.unique().tolist() == [0.0, 1.0] and (area > 0.02).all() and (area <= 0.5).all()
    assert (area == 0.5).any() and (area < 0.3).any()  # half-image completions beside boxes and ellipses
    x = torch.rand(8, 1, 28, 28)
    a, b = augment(x, g(), p=0.5), augment(x, g(), p=0.5)
    assert torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, a.mul(255).round().div(255))  # 8-bit levels, like any image file
    # only the chosen kinds: blur alone on every image smooths all of them and adds no noise
    blurred = augment(x, g(), p=1.0, ops=("blur",))
    assert blurred.std() < 0.5 * x.std() and torch.equal(augment(x, g(), p=0.5, ops=()), quantise(x))
    compressed = jpeg(x, 75)
    assert compressed.shape == x.shape and 0 < (compressed - x).abs().mean() < 0.3


def test_tone_channels_show_one_grey_level_and_older_detectors_still_load(tmp_path):
    black, faint = torch.zeros(1, 1, 28, 28), torch.full((1, 1, 28, 28), 1 / 255)
    assert ((tones(faint) - tones(black))[:, 0] > 0.12).all()  # an eighth of the range, not 1/255
    assert ((tones(1 - faint) - tones(torch.ones_like(faint)))[:, 1] > 0.12).all()  # the same below white
    # a card written before the tone channels existed has no such field: it is the network it was
    old = Detector(DetectorConfig(width=8, tone_channels=False)).eval()
    save_detector(old, tmp_path, {})
    card = json.loads((tmp_path / "detector.json").read_text())
    del card["config"]["tone_channels"]
    (tmp_path / "detector.json").write_text(json.dumps(card))
    loaded, _ = load_detector(tmp_path)
    x = torch.rand(4, 1, 28, 28)
    assert not loaded.config.tone_channels
    torch.testing.assert_close(loaded.predict(x)[0], old.predict(x)[0])


def test_the_edit_map_loss_weighs_partly_edited_images_more():
    masks = torch.zeros(3, 1, 28, 28)
    masks[1] = 1  # a sample: generated everywhere
    masks[2, :, 7:21, 7:21] = 1  # a paste
    weights = edit_map_weights(masks, DetectTrainConfig(steps=1, edit_weight=10))
    assert weights.shape == masks.shape
    assert weights[0].unique().tolist() == [1.0] and weights[1].unique().tolist() == [1.0]
    assert weights[2].unique().tolist() == [10.0]  # inside and outside the pasted region alike


def _write_folder(folder, held_out):
    folder.mkdir()
    real, fakes = held_out
    digit = (real[0, 0].numpy() * 255).round().astype(np.uint8)
    fake = (fakes["vae"].of("vae:sample").images[0, 0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(digit).save(folder / "real.png")
    Image.fromarray(fake).save(folder / "fake.png")
    Image.fromarray(np.stack([digit] * 3, -1)).resize((56, 40)).save(folder / "rgb.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    (folder / "notes.txt").write_text("not an image, not judged")


def test_cli_judges_a_folder_and_reports_the_bad_file(detector_dir, held_out, tmp_path, capsys):
    _write_folder(tmp_path / "in", held_out)
    code = main(["detect", str(detector_dir), str(tmp_path / "in"), "--json", str(tmp_path / "v.json"),
                 "--heatmap", str(tmp_path / "maps"), "--sheet", str(tmp_path / "sheet.png")])
    out, err = capsys.readouterr()
    assert code == 1  # some file could not be read
    assert "broken.png" in err and "broken.png" not in out and "notes.txt" not in out + err
    verdicts = {v["image"]: v for v in json.loads((tmp_path / "v.json").read_text())["images"]}
    assert set(verdicts) == {"real.png", "fake.png", "rgb.jpg"}
    assert verdicts["real.png"]["verdict"] == "real" and verdicts["fake.png"]["verdict"] == "generated/edited"
    assert verdicts["rgb.jpg"]["note"] == "converted RGB to L, resized 56x40 to 28x28"
    assert "converted RGB to L" in out
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["fake.png", "real.png", "rgb.png"]
    assert Image.open(tmp_path / "maps" / "rgb.png").size == (56 * 3, 40 * 3)
    assert "wrote " + str(tmp_path / "sheet.png") + " (3 of 3 images" in out
    sheet = np.asarray(Image.open(tmp_path / "sheet.png").convert("RGB")).astype(int)
    assert sheet.shape[1] > sheet.shape[0]  # one row of three tiles
    assert ((sheet[..., 0] > 200) & (sheet[..., 1] < 80)).any()  # the fake's edit map or its red title


def test_softness_flags_blurred_and_resized_images_but_not_jpeg_or_noise():
    floor = sharpness_floor(load_dataset("mnist", "train").images[:5000].float() / 255)
    real = load_dataset("mnist", "test").images[:1000].float() / 255
    assert is_soft(real, floor).float().mean() < 0.03
    for name, perturb in PERTURBATIONS.items():
        share = is_soft(quantise(perturb(real)), floor).float().mean().item()
        assert (share > 0.95) if name.startswith(("blur", "resample")) else (share < 0.05), (name, share)
    rgb = real[:50].expand(-1, 3, -1, -1)  # a grey picture in three channels measures the same
    assert torch.allclose(sharpness(rgb), sharpness(real[:50]))
    blank = torch.full((2, 1, 28, 28), 0.5)
    blank[1, 0, 5, 5] = 0.51  # contrast below MIN_CONTRAST: nothing to measure, never soft
    assert sharpness(blank).isnan().all() and not is_soft(blank, floor).any()


def test_cli_says_which_images_look_blurred(detector_dir, held_out, tmp_path, capsys):
    real = held_out[0][:4]
    images = torch.cat([real, PERTURBATIONS["blur-sigma1"](real)])
    pixels = (quantise(images) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)  # (N, H, W, C), as a file holds
    np.savez(tmp_path / "x.npz", images=pixels.numpy())
    assert main(["detect", str(detector_dir), str(tmp_path / "x.npz"), "--json", str(tmp_path / "v.json")]) == 0
    out = capsys.readouterr().out
    assert out.count("soft: blurred or resized?") == 4 and "4 look blurred or resized" in out
    verdicts = json.loads((tmp_path / "v.json").read_text())["images"]
    assert [v["soft"] for v in verdicts] == [False] * 4 + [True] * 4
    card_path = detector_dir / "detector.json"
    card = json.loads(card_path.read_text())
    assert 0 < card["softness"]["sharpness_floor"] < 1 and card["softness"]["quantile"] == 0.01
    older = tmp_path / "older"  # a card from before the floor: judged as before, softness unknown
    older.mkdir()
    (older / "detector.safetensors").write_bytes((detector_dir / "detector.safetensors").read_bytes())
    (older / "detector.json").write_text(json.dumps({k: v for k, v in card.items() if k != "softness"}))
    assert main(["detect", str(older), str(tmp_path / "x.npz"), "--json", str(tmp_path / "w.json")]) == 0
    assert "soft" not in capsys.readouterr().out
    assert {v["soft"] for v in json.loads((tmp_path / "w.json").read_text())["images"]} == {None}


def test_cli_judges_a_data_slice_at_a_stated_threshold(detector_dir, capsys):
    assert main(["detect", str(detector_dir), "mnist:test:0-9", "--threshold", "0.9"]) == 0
    out = capsys.readouterr().out
    assert "threshold 0.9" in out and out.count("mnist:test:") == 10 and "10 judged" in out


def test_cli_trains_a_detector(runs, tmp_path, capsys):
    out = tmp_path / "det"
    assert main(["detect", "train", "--real", "mnist:train:0-511", "--fake", str(runs[0]), "--out", str(out),
                 "--steps", "3", "--width", "4", "--fakes-per-source", "32", "--edit-weight", "5",
                 "--edit-truth", "region", "--no-self-blend", "--augment", "blur,jpeg", "--no-progress"]) == 0
    assert "vae:paste" in capsys.readouterr().out
    assert {p.name for p in out.iterdir()} == {"detector.safetensors", "detector.json", "report.md"}
    training = json.loads((out / "detector.json").read_text())["training"]
    assert training["real"] == "mnist:train:0-511"
    assert training["options"]["edit_weight"] == 5 and training["options"]["width"] == 4
    assert training["options"]["edit_truth"] == "region"
    assert not training["options"]["self_blend"] and SELF_BLEND not in training["fake_sources"]
    assert training["options"]["augmentations"] == "blur,jpeg"


@pytest.mark.parametrize("args, message", [
    (["detect", "{tmp}/nowhere", "mnist:test:0-9"], "does not exist"),
    (["detect", "{tmp}", "mnist:test:0-9"], "is not a genforge detector"),
    (["detect", "{det}", "{tmp}"], "no image files"),
    (["detect", "{det}", "{tmp}/missing.png"], "no such file or folder"),
    (["detect", "{det}", "mnist:test:0-9", "--steps", "3"], "--steps belongs to `genforge detect train`"),
    (["detect", "{det}", "mnist:test:0-9", "--edit-weight", "3"], "--edit-weight belongs to `genforge detect train`"),
    (["detect", "{det}", "mnist:test:0-9", "--edit-truth", "region"], "--edit-truth belongs to"),
    (["detect", "{det}", "mnist:test:0-9", "--no-self-blend"], "--self-blend belongs to"),
    (["detect", "train", "--real", "mnist", "--out", "{tmp}/d"], "genforge detect train --real DATA"),
    (["detect", "{det}", "mnist:test:0-9", "--augment", "blur"], "--augment belongs to"),
    (["detect", "train", "--real", "mnist:train:0-63", "--fake", "{det}", "--out", "{tmp}/d", "--steps", "1",
      "--sheet", "{tmp}/s.png"], "--sheet belongs to judging"),
    (["detect", "train", "--real", "mnist:train:0-63", "--fake", "{det}", "--out", "{tmp}/d", "--steps", "1",
      "--augment", "blur,rotate"], "unknown: 'rotate'"),
])
def test_cli_errors_are_one_line(args, message, detector_dir, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path, det=detector_dir) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_detector_judges_the_realism_of_edits(runs, detector_dir, held_out, tmp_path, capsys):
    from genforge.edit import Editor
    detector, _ = load_detector(detector_dir)
    editor = Editor(genforge.load(runs[0]), detector=detector)
    assert editor.realism_judge == "detector"
    real = held_out[0]
    samples = held_out[1]["vae"].of("vae:sample").images
    assert editor.realism(real).mean() > editor.realism(samples).mean() + 0.3
    wrong = Detector(DetectorConfig(in_channels=3, image_size=32, width=8))
    with pytest.raises(genforge.GenforgeError, match="judges 3x32x32 images"):
        Editor(genforge.load(runs[0]), detector=wrong)
    assert main(["edit", str(runs[0]), "--input", "mnist:test:0-7", "--op", "reconstruct", "--out",
                 str(tmp_path / "r.png"), "--detector", str(detector_dir), "--no-progress"]) == 0
    assert "detector P(real)" in capsys.readouterr().out
