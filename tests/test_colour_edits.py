"""Edits on colour images: the colour properties, the calibrated property edit, style labels,
the feature network as a judge at 32x32 and of vendors, and every `genforge edit` operation on
RGB runs (an autoencoder and a GAN) trained for a few steps on emoji.

The measures and the calibrated edit are checked where the answer is known (discs drawn in a
chosen colour and size); the runs only need to be real enough to show each edit changes what it
says. Tests that need the emoji tarballs skip without them (GENFORGE_CACHE where they are)."""

import math

import pytest
import torch

from genforge.cli import main
from genforge.data import ImageSet
from genforge.data.labelling import relabel
from genforge.edit import colour
from genforge.edit.calibrate import PropertyModel, calibrated_edit, change, table
from genforge.errors import ConfigError, DataError

SIZE = 32


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(N, 3) RGB of HSV colours, hue a fraction of the circle."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], 1)
    return v[:, None] - v[:, None] * s[:, None] * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def discs(radius: torch.Tensor, rgb: torch.Tensor, size: int = SIZE, background: float = 1.0) -> torch.Tensor:
    """Anti-aliased discs of `radius` (N,) pixels and colour rgb (N, 3), centred on white (or grey `background`)."""
    c = (size - 1) / 2
    ys, xs = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    d = ((ys - c) ** 2 + (xs - c) ** 2).sqrt()
    inside = (radius.view(-1, 1, 1) - d + 0.5).clamp(0, 1)[:, None]
    return background * (1 - inside) + inside * rgb[:, :, None, None]


def disc_decoder(z: torch.Tensor) -> torch.Tensor:
    """A known 'generator': code (a, u1, u2) -> a disc of radius 8 + 3a whose colour has the hue
    angle of u and the saturation |u| (brightness 0.9). Its hue vector is u itself."""
    radius = (8 + 3 * z[:, 0]).clamp(2, 15)
    u = z[:, 1:3]
    hue = (torch.atan2(u[:, 1], u[:, 0]) / (2 * math.pi)) % 1
    return discs(radius, hsv_to_rgb(hue, u.norm(dim=1).clamp(0, 1), torch.full((len(z),), 0.9)))


def test_colour_measures_of_known_discs():
    red, green, grey = torch.tensor([[1.0, 0, 0]]), torch.tensor([[0, 0.8, 0]]), torch.tensor([[0.5, 0.5, 0.5]])
    x = torch.cat([discs(torch.tensor([8.0]), red), discs(torch.tensor([8.0]), green),
                   discs(torch.tensor([12.0]), grey)])
    assert colour.area(x)[0] == pytest.approx(math.pi * 64 / SIZE ** 2, rel=0.1)  # anti-aliased edges count
    assert colour.area(x)[2] / colour.area(x)[0] == pytest.approx(144 / 64, rel=0.1)
    assert colour.hue(x)[:2].tolist() == pytest.approx([0.0, 1 / 3], abs=1e-3)
    # edge pixels blend with the white: a little paler than the disc itself
    assert colour.saturation(x).tolist() == pytest.approx([1, 1, 0], abs=0.1)
    assert colour.brightness(x).tolist() == pytest.approx([1, 0.8, 0.5], abs=0.05)
    # hue is circular: just below red and just above it average to red, not to cyan
    near_red = torch.cat([discs(torch.tensor([8.0]), hsv_to_rgb(torch.tensor([h]), torch.ones(1), torch.ones(1)))
                          for h in (0.95, 0.05)], 3)  # two discs side by side in one (wider) image
    assert colour.hue_difference(colour.hue(near_red), torch.zeros(1)).abs().item() < 0.01
    assert colour.hue_difference(torch.tensor([0.9]), torch.tensor([0.1])).item() == pytest.approx(-0.2)
    # on another background the background is not figure
    on_black = discs(torch.tensor([8.0]), red, background=0.0)
    assert colour.area(on_black, (0, 0, 0))[0] == pytest.approx(float(colour.area(x)[0]), rel=0.05)
    assert colour.area(on_black)[0] > 0.9  # measured against white, the black background is figure


NAMES = ("area", "saturation", "brightness", "hue")


@pytest.fixture(scope="module")
def disc_model():
    g = torch.Generator().manual_seed(0)
    codes = torch.randn(1500, 3, generator=g) * torch.tensor([1.0, 0.35, 0.35]) + torch.tensor([0, 0.3, 0.2])
    return PropertyModel.fit(NAMES, codes, table(NAMES, disc_decoder(codes)))


@pytest.fixture(scope="module")
def disc_codes():
    g = torch.Generator().manual_seed(1)
    return torch.cat([torch.randn(16, 1, generator=g) * 0.5,
                      0.6 * torch.nn.functional.normalize(torch.randn(16, 2, generator=g), dim=1)], 1)


@pytest.mark.parametrize("name, amount", [("hue", 0.2), ("hue", -0.1), ("area", -0.1), ("area", 0.08),
                                          ("saturation", -0.2)])
def test_a_calibrated_edit_moves_the_property_by_the_amount_asked(disc_model, disc_codes, name, amount):
    edit = calibrated_edit(disc_codes, disc_decoder, NAMES, name, amount, fitted=disc_model)
    assert edit.images.shape == (16, 3, SIZE, SIZE)
    assert edit.achieved.mean().item() == pytest.approx(amount, abs=0.2 * abs(amount))
    assert (edit.achieved.sign() == math.copysign(1, amount)).all()
    # and as little else as possible: the other properties move far less than the one asked
    for other, moved in edit.drift.items():
        assert moved.abs().mean() < 0.35 * abs(amount), other
    torch.testing.assert_close(change(name, edit.images, edit.reconstructions), edit.achieved)


def test_local_slopes_see_what_one_slope_for_all_cannot(disc_model, disc_codes):
    """Saturation is the length of (u1, u2): no one direction lowers it for every code, the
    derivative at each code does."""
    one_slope = calibrated_edit(disc_codes, disc_decoder, NAMES, "saturation", -0.2, fitted=disc_model, local=False)
    local = calibrated_edit(disc_codes, disc_decoder, NAMES, "saturation", -0.2)
    assert (local.achieved + 0.2).abs().mean() < 0.02 < (one_slope.achieved + 0.2).abs().mean()


def test_relabel_gives_styles_or_pairs_and_checks_its_choice():
    data = ImageSet(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.tensor([0, 2, 1, 2]), ["a", "b", "c"], "toy",
                    torch.tensor([1, 0, 1, 1]), ["google", "twitter"])
    assert relabel(data, "class") is data
    style = relabel(data, "style")
    assert style.labels.tolist() == [1, 0, 1, 1] and style.classes == ["google", "twitter"]
    pairs = relabel(data, "class+style")
    assert pairs.labels.tolist() == [1, 4, 3, 5] and pairs.classes[4] == "c/google" and len(pairs.classes) == 6
    with pytest.raises(ConfigError, match="labels must be one of class, style, class\\+style"):
        relabel(data, "vendor")
    with pytest.raises(DataError, match="needs images with style labels"):
        relabel(ImageSet(data.images, data.labels, data.classes, "toy"), "style")
    unlabelled = ImageSet(data.images)
    assert relabel(unlabelled, "style").labels is None


def test_the_reader_judges_32px_images_and_reads_vendors():
    from genforge.edit.reader import Reader, can_read
    from genforge.metrics.feature_net import load_feature_net
    net, _ = load_feature_net("emoji")
    x = torch.rand(5, 3, 32, 32)
    assert can_read(net, (3, 32, 32), "style") and not can_read(net, (1, 32, 32))
    assert not can_read(load_feature_net("mnist")[0], (1, 28, 28), "style")
    style, pairs = Reader(net, 32, "style").eval(), Reader(net, 32, "class+style").eval()
    assert style.config.num_classes == 2 and pairs.config.num_classes == 18
    with torch.no_grad():
        up = torch.nn.functional.interpolate(x, size=(64, 64), mode="bilinear", antialias=True)
        _, c, s = net.heads(up)
        torch.testing.assert_close(style(x), s)
        assert pairs(x).argmax(1).tolist() == (c.argmax(1) * 2 + s.argmax(1)).tolist()
    categories, vendors = pairs.category_and_style(x)
    assert categories.tolist() == c.argmax(1).tolist() and vendors.tolist() == s.argmax(1).tolist()
    # the latent search's feature loss needs gradients through the resize
    x.requires_grad_(True)
    style.features_and_logits(x)[0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# --- runs on emoji ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def emoji_data():
    from genforge.data import load_dataset
    from genforge.errors import DataNotFound
    try:
        return load_dataset("emoji", "test", image_size=SIZE)
    except DataNotFound:
        pytest.skip("needs the emoji tarballs (genforge data fetch emoji; GENFORGE_CACHE where they are)")


def _train(out, *args) -> None:
    assert main(["train", "--dataset", "emoji", "--no-progress", "--prior", "none", "--out", str(out), *args]) == 0


@pytest.fixture(scope="module")
def cvae_run(tmp_path_factory, emoji_data):
    """A cvae on emoji categories at 32x32, 20 steps of a narrow network."""
    out = tmp_path_factory.mktemp("cvae")
    _train(out, "--model", "cvae", "--image-size", "32", "--steps", "20", "--batch-size", "32", "--set", "width=8",
           "--set", "latent_dim=8", "--set", "likelihood=gaussian-learned")
    return out


@pytest.fixture(scope="module")
def gan_run(tmp_path_factory, emoji_data):
    """A resgan-cond conditioned on the vendor at 32x32, 3 steps of a narrow network."""
    out = tmp_path_factory.mktemp("resgan")
    _train(out, "--model", "resgan-cond", "--image-size", "32", "--labels", "style", "--steps", "3",
           "--batch-size", "16", "--set", "g_width=8", "--set", "d_width=8", "--set", "latent_dim=16")
    return out


QUICK = ["--no-progress", "--search-steps", "3", "--restarts", "1", "--candidates", "4"]
OPS = [("reconstruct", []), ("interpolate", ["--format", "gif"]), ("interpolate", []), ("inpaint", ["--box", "4,4,20,20"]),
       ("directions", ["--method", "pca", "--num-directions", "2", "--steps", "3"]),
       ("attribute", ["--to", "hue=+0.2"]), ("attribute", ["--to", "saturation"])]


def _png(path):
    from PIL import Image
    with Image.open(path) as im:
        return im.mode, im.size, im.n_frames if hasattr(im, "n_frames") else 1


@pytest.mark.parametrize("run", ["cvae_run", "gan_run"])
def test_every_edit_runs_on_a_colour_run(run, request, tmp_path, capsys):
    run_dir = request.getfixturevalue(run)
    for op, extra in OPS + [("swap-class", ["--to", "twitter" if run == "gan_run" else "food & drink"])]:
        suffix = ".gif" if "gif" in extra else ".png"
        out = tmp_path / f"{op}{suffix}"
        assert main(["edit", str(run_dir), "--input", "emoji:test:0-3", "--op", op, "--out", str(out), *QUICK,
                     *extra]) == 0, op
        mode, (w, h), frames = _png(out)
        assert mode in ("RGB", "P") and w > 0 and h > 0, op  # GIFs are palette images of colour frames
        if suffix == ".gif":
            assert frames > 1
    summary = capsys.readouterr().out
    assert "hue: asked +0.2" in summary and "classifier reads the same class in" in summary
    assert ("twitter" in summary) == (run == "gan_run")


def test_outputs_keep_their_colours(gan_run, tmp_path):
    """A .npz of results holds RGB images at the run's size, and a colour PNG comes back in colour."""
    import numpy as np
    from PIL import Image
    Image.new("RGB", (48, 40), (220, 30, 30)).save(tmp_path / "red.png")
    out = tmp_path / "rec.npz"
    assert main(["edit", str(gan_run), "--input", str(tmp_path / "red.png"), "--op", "reconstruct",
                 "--out", str(out), *QUICK]) == 0
    with np.load(out) as f:
        images = next(iter(f.values()))
    assert images.shape[-3:] in ((3, SIZE, SIZE), (SIZE, SIZE, 3))
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[8:24, 8:24] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    assert main(["edit", str(gan_run), "--input", str(tmp_path / "red.png"), "--op", "inpaint", "--mask",
                 str(tmp_path / "mask.png"), "--out", str(tmp_path / "filled"), *QUICK]) == 0
    with Image.open(next((tmp_path / "filled").glob("*.png"))) as im:
        filled = np.asarray(im.convert("RGB"))
    assert filled.shape == (SIZE, SIZE, 3)
    assert (filled[0, 0].astype(int) - (220, 30, 30)).__abs__().max() <= 2  # known pixels stay red


def test_a_vendor_conditioned_run_swaps_vendor_by_name(gan_run, emoji_data):
    import genforge
    from genforge.edit import Editor, FitConfig, as_float
    editor = Editor(genforge.load(gan_run), FitConfig(steps=3, restarts=1, candidates=4))
    assert editor.class_names == ["google", "twitter"] and editor.feature_net.config.num_classes == 2
    images = editor.labelled(emoji_data.subset(slice(0, 6)))
    assert images.labels.tolist() == emoji_data.styles[:6].tolist()  # the vendors, not the categories
    source = images.labels
    target = editor.swap_targets("Twitter", source)
    assert target.tolist() == [1] * 6
    x = as_float(images)
    z = editor.invert(x, source)
    from genforge.edit.invert import generate
    swapped = editor.swap_class(x, source, target)
    # the same codes drawn under the target label: the label is what changed
    torch.testing.assert_close(swapped, generate(editor.model, z, target))
    google = source == 0
    assert (swapped[google] - generate(editor.model, z[google], source[google])).abs().mean() > 1e-3


def test_a_hue_edit_on_a_trained_gan_moves_hue_the_way_asked(gan_run, emoji_data):
    import genforge
    from genforge.edit import Editor, FitConfig, as_float
    editor = Editor(genforge.load(gan_run), FitConfig(steps=3, restarts=1, candidates=4))
    images = editor.labelled(emoji_data.subset(slice(0, 8)))
    for name, amount in (("hue", 0.15), ("area", -0.05)):
        edit = editor.change_property(as_float(images), name, amount, images.labels)
        assert edit.images.shape == (8, 3, SIZE, SIZE)
        assert math.copysign(1, edit.achieved.mean()) == math.copysign(1, amount), name
        assert abs(edit.achieved.mean()) > 0.3 * abs(amount), name


def test_training_on_style_labels_stores_and_reports_them(gan_run):
    import json
    config = json.loads((gan_run / "config.json").read_text())
    assert config["data"]["labels"] == "style" and config["data"]["classes"] == ["google", "twitter"]
    assert config["model_config"]["num_classes"] == 2
    assert "Conditioned on the style labels: google, twitter" in (gan_run / "report.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["--op", "attribute", "--to", "hue"], "hue goes round a circle"),
    (["--op", "attribute", "--to", "colour=+0.1"], "an amount can be asked of"),
    (["--op", "attribute", "--to", "hue=lots"], "the amount must be a finite number"),
    (["--op", "swap-class", "--to", "apple"], "no class 'apple' in this run"),
])
def test_bad_colour_edits_are_one_line(gan_run, tmp_path, capsys, args, message):
    assert main(["edit", str(gan_run), "--input", "emoji:test:0-1", "--out", str(tmp_path / "o.png"), *QUICK,
                 *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_train_labels_flag_is_checked(tmp_path, capsys):
    assert main(["train", "--model", "cvae", "--dataset", "mnist", "--labels", "style", "--steps", "1",
                 "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "needs images with style labels" in capsys.readouterr().err


def test_every_edit_runs_at_64(tmp_path, emoji_data, capsys):
    out = tmp_path / "run64"
    _train(out, "--model", "cvae", "--image-size", "64", "--labels", "class+style", "--steps", "2",
           "--batch-size", "16", "--set", "width=4", "--set", "latent_dim=4")
    for op, extra in [("reconstruct", []), ("inpaint", ["--box", "16,16,48,48"]), ("attribute", ["--to", "area=-0.1"]),
                      ("swap-class", ["--to", "twitter"]), ("directions", ["--method", "pca", "--steps", "3"])]:
        picture = tmp_path / f"{op}.png"
        assert main(["edit", str(out), "--input", "emoji:test:0-3", "--op", op, "--out", str(picture), *QUICK,
                     *extra]) == 0, op
        assert _png(picture)[0] == "RGB"
    # on category/vendor pairs, --to twitter keeps each image's category: emoji 0-3 are two smileys
    # drawn by both vendors, so every target is Smileys & Emotion/twitter
    assert "(Smileys & Emotion/twitter) in" in capsys.readouterr().out
