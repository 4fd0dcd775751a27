"""The colour feature network (emoji's, 64x64x3, category and vendor heads) and the evaluation
pipeline on RGB images.

Most tests run on synthetic colour images and on the shipped network's weights, so they need
neither the network nor the emoji tarballs; the ones that need the real data set skip, saying so.
"""

import json

import pytest
import torch

from genforge.data import ImageSet
from genforge.errors import GenforgeError
from genforge.metrics.extractors import ClassifierExtractor
from genforge.metrics.feature_net import (WEIGHTS_DIR, FeatureNet, FeatureNetConfig, load_feature_net,
                                          save_feature_net, shipped_feature_nets)
from genforge.metrics.train_features import accuracy, colour_augment, network_config, round_trip, shrink, \
    train_feature_net

COLOURS = torch.tensor([[220, 30, 30], [30, 180, 40], [40, 60, 220]], dtype=torch.uint8)  # the 3 classes


def shapes(n: int, size: int, seed: int = 0) -> ImageSet:
    """Coloured squares on white: the colour is the class, a black outline or none the style
    (like two vendors drawing the same emoji)."""
    g = torch.Generator().manual_seed(seed)
    labels, styles = torch.arange(n) % 3, (torch.arange(n) // 3) % 2
    images = torch.full((n, 3, size, size), 255, dtype=torch.uint8)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    for i in range(n):
        r = int(torch.randint(size // 5, size // 3, (1,), generator=g))
        cy, cx = (int(v) for v in torch.randint(r, size - r, (2,), generator=g))
        if styles[i]:
            images[i][:, ((yy - cy).abs() <= r) & ((xx - cx).abs() <= r)] = 0
        inner = ((yy - cy).abs() <= r * 0.7) & ((xx - cx).abs() <= r * 0.7)
        images[i][:, inner] = COLOURS[labels[i]][:, None]
    return ImageSet(images, labels, ["red", "green", "blue"], "shapes", styles, ["plain", "outlined"])


def test_the_mnist_layout_is_unchanged_and_colour_sets_get_more_stages():
    gray = network_config(ImageSet(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.tensor([0, 1])))
    assert gray.widths is None and gray.num_styles == 0 and gray.stage_widths == [16, 32]
    from safetensors import safe_open
    with safe_open(str(WEIGHTS_DIR / "mnist.safetensors"), "pt") as shipped:
        assert set(FeatureNet(gray).state_dict()) == set(shipped.keys())  # the shipped MNIST net's very layout
    assert network_config(shapes(6, 64)).stage_widths == [12, 24, 48, 48]
    c32 = network_config(shapes(6, 32))
    assert c32.stage_widths == [12, 24, 48] and c32.num_styles == 2 and c32.num_classes == 3


def test_a_colour_net_with_a_style_head_saves_and_loads(tmp_path):
    net = FeatureNet(network_config(shapes(6, 32))).eval()
    save_feature_net(net, tmp_path, "toy", {"dataset": "toy", "test_accuracy": 0.5})
    card = json.loads((tmp_path / "toy.json").read_text())
    assert card["config"]["widths"] == [12, 24, 48] and card["config"]["num_styles"] == 2
    loaded, _ = load_feature_net("toy", tmp_path)
    x = shapes(4, 32).images.float() / 255
    for a, b in zip(net.heads(x), loaded.heads(x)):
        assert torch.equal(a, b)
    f, logits, style = loaded.heads(x)
    assert f.shape == (4, 128) and logits.shape == (4, 3) and style.shape == (4, 2)
    # a network without a style head says so, and writes no widths (the MNIST cards stay as they were)
    plain = FeatureNet(FeatureNetConfig())
    save_feature_net(plain, tmp_path, "plain", {})
    assert "widths" not in json.loads((tmp_path / "plain.json").read_text())["config"]
    assert plain.heads(torch.zeros(1, 1, 28, 28))[2] is None


def test_colour_augmentation_keeps_the_background_and_never_mirrors():
    x = torch.ones(8, 3, 64, 64)
    x[:, :, 16:48, 4:24] = torch.tensor([1.0, 0.0, 0.0])[:, None, None]  # a red bar on the left
    out = colour_augment(x.clone(), torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    assert torch.allclose(out[:, :, :2, :], torch.ones(8, 3, 2, 64), atol=1e-5)  # edges repeat: white stays white
    green = out[:, 1]
    assert (green[:, :, :32].mean((1, 2)) < green[:, :, 32:].mean((1, 2))).all()  # the bar stays on the left
    flat = torch.full((2, 3, 64, 64), 0.4)
    assert torch.allclose(round_trip(flat, 32), flat, atol=1e-5)
    assert shrink(shapes(3, 64).images, 32).shape == (3, 3, 32, 32)


def test_training_on_synthetic_colour_images_learns_both_heads():
    torch.set_num_threads(2)
    net, card = train_feature_net("shapes", epochs=6, batch_size=32, lr=3e-3, progress=False,
                                  train_data=shapes(192, 32, seed=1), test_data=shapes(60, 32, seed=2))
    assert card["test_accuracy"] >= 0.9 and card["test_style_accuracy"] >= 0.75, card
    assert card["styles"] == ["plain", "outlined"] and "test_accuracy_at_16" in card
    assert card["test_accuracy"] == pytest.approx(accuracy(net, shapes(60, 32, seed=2)))


def test_the_shipped_emoji_network_loads_with_its_card():
    assert "emoji" in shipped_feature_nets()
    assert (WEIGHTS_DIR / "emoji.safetensors").stat().st_size < 1_000_000
    net, card = load_feature_net("emoji")
    assert card["dataset"] == "emoji" and card["styles"] == ["google", "twitter"]
    assert card["command"].startswith("genforge eval train-features --dataset emoji") and "seed" in card["training"]
    # well above always answering the largest category (People & Body, 56% of the test split) and chance (50%)
    assert card["test_accuracy"] > 0.75 and card["test_style_accuracy"] > 0.9
    assert card["test_accuracy_at_32"] > 0.6 and card["test_style_accuracy_at_32"] > 0.8
    assert net.config.image_size == 64 and net.config.in_channels == 3 and net.config.num_styles == 2


def test_the_emoji_extractor_reads_64_and_upsampled_32_colour_images():
    extractor = ClassifierExtractor("emoji")
    big = shapes(5, 64).images
    emb = extractor.embed(big)
    assert emb.features.shape == (5, 128) and emb.probs.shape == (5, 9) and emb.style_probs.shape == (5, 2)
    assert torch.allclose(emb.probs.sum(1), torch.ones(5), atol=1e-5)
    small = shrink(big, 32)
    direct = extractor.net.heads(torch.nn.functional.interpolate(
        small.float() / 255, size=(64, 64), mode="bilinear", antialias=True))[0]
    assert torch.allclose(extractor.embed(small).features, direct, atol=1e-5)
    assert extractor.describe()["test_style_accuracy"] == extractor.card["test_style_accuracy"]
    for wrong in (torch.zeros(2, 1, 64, 64), torch.zeros(2, 3, 128, 128), torch.zeros(2, 3, 32, 16)):
        with pytest.raises(GenforgeError, match="cannot be judged"):
            extractor.embed(wrong)
    with pytest.raises(GenforgeError, match="cannot be judged"):  # the grayscale nets take their size only
        ClassifierExtractor("mnist").embed(torch.zeros(2, 1, 14, 14))


@pytest.fixture(scope="module")
def emoji_test():
    from genforge.data import load_dataset
    from genforge.errors import DataNotFound
    try:
        return load_dataset("emoji", "test")
    except DataNotFound:
        pytest.skip("needs the emoji tarballs (genforge data fetch emoji; GENFORGE_CACHE where they are)")


@pytest.mark.slow
def test_the_emoji_network_accuracy_matches_its_card(emoji_test):
    net, card = load_feature_net("emoji")
    assert accuracy(net, emoji_test) == pytest.approx(card["test_accuracy"], abs=2e-3)
    assert accuracy(net, emoji_test, head="style") == pytest.approx(card["test_style_accuracy"], abs=2e-3)


@pytest.mark.slow
def test_real_emoji_at_32_score_near_the_floor(emoji_test):
    from genforge.metrics.evaluate import evaluate_images, real_split
    train = real_split("emoji", "train", 1000, image_size=32)
    result = evaluate_images(train.images, "emoji")
    assert result["image_size"] == 32 and result["n_real"] == len(emoji_test)
    for key in ("fid", "kid", "precision", "recall", "density", "coverage", "classifier_score", "classes_covered"):
        assert key in result
    assert result["floor"]["n_train"] == 6824 and result["classes_covered"] >= 8  # Activities is 2% of the set
    noise = evaluate_images(torch.randint(0, 256, (1000, 3, 32, 32), dtype=torch.uint8), "emoji")
    assert noise["fid"] > 5 * result["fid"] and noise["precision"] < result["precision"]


def test_eval_judges_an_npz_at_its_own_size_only_where_the_network_reads_it(tmp_path, capsys):
    import numpy as np

    from genforge.cli import main
    from genforge.cli.eval import _npz_size
    small = tmp_path / "small.npz"
    np.savez(small, images=np.zeros((4, 32, 32, 3), np.uint8))
    assert _npz_size(str(small), "emoji", 64) == 32  # judged at 32 against real emoji shrunk to 32
    np.savez(tmp_path / "digits.npz", images=np.zeros((4, 14, 14), np.uint8))
    assert _npz_size(str(tmp_path / "digits.npz"), "mnist", 28) == 28  # resized to 28, as before
    assert main(["eval", "--images", str(small), "--dataset", "emoji", "--image-size", "128"]) == 2
    assert "--image-size 128 is larger than emoji's 64x64 images" in capsys.readouterr().err
