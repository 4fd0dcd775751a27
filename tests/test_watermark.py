"""The learned watermark (genforge.provenance.watermark) and `genforge watermark`, on real MNIST.

One tiny watermark is trained once per module (32 bits, narrow networks, a couple of hundred
steps: seconds) and every test reads it; the numbers asserted are what such a small one reaches,
well short of a benchmark's (BENCHMARKS.md, "Watermark")."""

import importlib.util
import io
import json
from math import comb

import numpy as np
import pytest
import torch
from PIL import Image

import genforge
from genforge.cli import main
from genforge.errors import GenforgeError
from genforge.provenance.watermark import (Marker, bits_to_key, embed, key_to_bits, load_watermark, p_value,
                                           read_marks, threshold, train_watermark)
from genforge.provenance.watermark.distortions import attack
from genforge.provenance.watermark.finetune import finetune_run, key_accuracy

KEY = "c0ffee15"  # 32 bits
OTHER = "12345678"


@pytest.fixture(scope="module")
def mark(tmp_path_factory, mnist_train):
    out = tmp_path_factory.mktemp("mark")
    train_watermark("mnist", out, bits=32, steps=240, key=KEY, seed=0, mark={"width": 16}, batch_size=32)
    return load_watermark(out)


@pytest.fixture(scope="module")
def digits(mnist_train):
    from genforge.data import load_dataset
    return load_dataset("mnist", "test").images[:64].float() / 255


def error_line(capsys, *args) -> str:
    assert main(list(map(str, args))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def agreement(results) -> float:
    return sum(r["bits_agree"] for r in results) / sum(r["bits"] for r in results)


def test_marked_images_read_their_key_and_real_images_read_chance(mark, digits):
    marked = embed(digits, mark, KEY)
    assert marked.shape == digits.shape and torch.equal(marked, (marked * 255).round() / 255)  # 8-bit levels
    assert 0 < (marked - digits).abs().max() <= mark.config.strength + 1 / 255
    results = read_marks(marked, mark, KEY)
    assert agreement(results) > 0.97
    assert sum(r["marked"] for r in results) >= 0.9 * len(results)
    assert all(r["matches"] == KEY and r["bits"] == 32 for r in results)
    # the same images unmarked: about half the bits agree, none is called marked
    unmarked = read_marks(digits, mark, KEY)
    assert 0.3 < agreement(unmarked) < 0.7
    assert not any(r["marked"] for r in unmarked)
    # marked with one key, tested for another: not marked either
    assert not any(r["marked"] for r in read_marks(marked, mark, OTHER))
    # without a key, the watermark's own (the one it was trained with here) is the one compared with
    assert read_marks(marked[:2], mark)[0]["matches"] == KEY


def test_a_marked_image_survives_a_real_jpeg_round_trip(mark, digits):
    marked = embed(digits[:32], mark, KEY)
    decoded = []
    for image in marked:
        buffer = io.BytesIO()
        Image.fromarray(image[0].mul(255).round().byte().numpy()).save(buffer, format="JPEG", quality=80)
        decoded.append(torch.from_numpy(np.array(Image.open(io.BytesIO(buffer.getvalue())))).float() / 255)
    jpeg = torch.stack(decoded)[:, None]
    assert (jpeg - marked).abs().max() > 2 / 255  # the codec did change the pixels
    results = read_marks(jpeg, mark, KEY)
    assert agreement(results) > 0.9
    assert sum(r["marked"] for r in results) >= 0.75 * len(results)


def test_a_crop_is_read_at_every_place_and_pays_for_it_in_the_p_value(mark, digits):
    marked = embed(digits[:16], mark, KEY)
    cropped = attack(marked, "crop", torch.Generator().manual_seed(0))
    assert cropped.shape[-1] == 24  # 75% of the area of 28x28
    results = read_marks(cropped, mark, KEY)
    assert agreement(results) > 0.85
    for r in results:  # 5 x 5 places tried: the tail probability times 25
        assert r["p_value"] == pytest.approx(min(1.0, 25 * p_value(r["bits_agree"], 32)))


def test_the_p_value_is_the_binomial_tail():
    # by hand: P(X >= 30) for X ~ binomial(32, 1/2)
    assert p_value(30, 32) == pytest.approx((comb(32, 30) + comb(32, 31) + comb(32, 32)) / 2 ** 32, rel=1e-12)
    assert p_value(0, 32) == pytest.approx(1.0) and p_value(16, 32) > 0.5
    assert threshold(32) == 30 and threshold(48) == 41  # the fewest bits that reach 1e-6
    assert p_value(threshold(32), 32) <= 1e-6 < p_value(threshold(32) - 1, 32)
    assert threshold(16) == 17  # 16 bits can never reach 1e-6: no image is called marked


def test_read_marks_reports_the_binomial_p_value_of_its_reading(mark, digits):
    marked = embed(digits[:8], mark, KEY)
    for r in read_marks(marked, mark, KEY):
        read = key_to_bits(r["key"], 32)
        agreed = int((read == key_to_bits(KEY, 32)).sum())
        assert r["bits_agree"] == agreed
        assert r["p_value"] == pytest.approx(sum(comb(32, k) for k in range(agreed, 33)) / 2 ** 32, rel=1e-9)
        assert r["marked"] == (r["p_value"] <= 1e-6)
    strict = read_marks(marked, mark, KEY, fpr=1e-12)
    assert all(r["marked"] == (r["p_value"] <= 1e-12) for r in strict)


def test_keys_are_hex_and_a_bad_key_is_one_clear_line(mark, digits):
    assert bits_to_key(key_to_bits("a5", 8)) == "a5"
    assert key_to_bits("a5", 8).tolist() == [1, 0, 1, 0, 0, 1, 0, 1]
    assert bits_to_key(key_to_bits(KEY.upper(), 32)) == KEY
    with pytest.raises(GenforgeError, match="is not hex"):
        embed(digits[:1], mark, "nothex!!")
    with pytest.raises(GenforgeError, match="has 3 hex digits; this watermark carries 32 bits"):
        read_marks(digits[:1], mark, "abc")


def test_the_watermark_directory_is_json_and_safetensors(mark):
    files = sorted(p.name for p in mark.path.iterdir())
    assert files == ["config.json", "watermark.safetensors"]
    config = json.loads((mark.path / "config.json").read_text())
    assert config["format"] == "genforge-watermark" and config["key"] == KEY and config["mark"]["bits"] == 32
    assert config["training"]["steps"] == 240
    measured = config["measured"]  # what training measured on 256 test images at its end
    assert measured["images"] == 256 and measured["clean"]["bit_accuracy"] > 0.95 and measured["psnr_db"] > 20


def test_cli_embed_and_read(mark, digits, tmp_path, capsys):
    originals = tmp_path / "in"
    originals.mkdir()
    for i in range(3):
        Image.fromarray(digits[i, 0].mul(255).round().byte().numpy()).save(originals / f"d{i}.png")
    assert main(["watermark", "embed", str(originals), "--mark", str(mark.path), "--key", KEY,
                 "--out", str(tmp_path / "out")]) == 0
    assert f"marked 3 image(s) with key {KEY}" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["d0.png", "d1.png", "d2.png"]
    assert main(["watermark", "read", str(tmp_path / "out"), "--mark", str(mark.path), "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["marked"] for r in results] == [True] * 3 and all(r["matches"] == KEY for r in results)
    assert main(["watermark", "read", str(originals / "d0.png"), str(tmp_path / "out" / "d0.png"),
                 "--mark", str(mark.path), "--key", KEY]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert ": not marked: " in lines[0] and ": marked: " in lines[1] and f"bits agree with {KEY}" in lines[1]
    # one image to one .png
    assert main(["watermark", "embed", str(originals / "d1.png"), "--mark", str(mark.path), "--key", OTHER,
                 "--out", str(tmp_path / "one.png")]) == 0
    assert (tmp_path / "one.png").is_file()


def test_cli_errors_are_one_line(mark, tmp_path, capsys):
    Image.new("L", (28, 28)).save(tmp_path / "a.png")
    line = error_line(capsys, "watermark", "read", tmp_path / "a.png", "--mark", mark.path, "--key", "xyz")
    assert line == "genforge: error: watermark key 'xyz' is not hex; write 8 digits 0-9 and a-f for a 32-bit watermark"
    line = error_line(capsys, "watermark", "embed", tmp_path / "a.png", "--mark", mark.path, "--key", "abcdef",
                      "--out", tmp_path / "o")
    assert "has 6 hex digits; this watermark carries 32 bits, which is 8 hex digits" in line
    line = error_line(capsys, "watermark", "read", tmp_path / "a.png", "--mark", tmp_path)
    assert "is not a watermark directory" in line
    line = error_line(capsys, "watermark", "read", tmp_path / "nope.png", "--mark", mark.path)
    assert "does not exist" in line


def test_cli_train_writes_a_watermark(tmp_path, capsys, mnist_train):
    out = tmp_path / "m"
    assert main(["watermark", "train", "--dataset", "mnist", "--bits", "8", "--steps", "3", "--width", "4",
                 "--batch-size", "8", "--key", "ab", "--out", str(out), "--no-progress"]) == 0
    assert f"wrote {out}: 8 bits, 3 steps" in capsys.readouterr().out
    loaded = load_watermark(out)
    assert loaded.bits == 8 and loaded.key == "ab" and loaded.config.width == 4
    line = error_line(capsys, "watermark", "train", "--dataset", "mnist", "--bits", "10", "--steps", "1",
                      "--out", tmp_path / "x", "--no-progress")
    assert "a multiple of 4 bits" in line


def test_finetune_puts_the_key_in_the_model(mark, tiny_run, tmp_path, capsys):
    out = tmp_path / "keyed"
    # a tiny decoder and a quick tune: a high lr and a loose hold on the original (keep_weight 3)
    result = finetune_run(tiny_run, mark.path, KEY, out, steps=150, batch_size=16, lr=1e-2, keep_weight=3.0)
    before, after = result["before"]["bit_accuracy"], result["after"]["bit_accuracy"]
    assert before < 0.7 and after > 0.9 and result["after"]["tpr"] > 0.8, result
    keyed = genforge.load(out)  # a run like any other
    assert keyed.image_shape == (1, 28, 28)
    assert key_accuracy(keyed, mark, KEY)["bit_accuracy"] == pytest.approx(after)
    assert json.loads((out / "config.json").read_text())["watermark"]["key"] == KEY
    assert not (out / "checkpoint.safetensors").exists()  # not a run to train further
    # the keep term holds the samples to the original's: a tighter hold changes them less
    finetune_run(tiny_run, mark.path, KEY, tmp_path / "tight", steps=150, batch_size=16, lr=1e-2, keep_weight=30.0)
    original = genforge.load(tiny_run).sample(32, seed=3)
    loose = (keyed.sample(32, seed=3) - original).abs().mean()
    tight = (genforge.load(tmp_path / "tight").sample(32, seed=3) - original).abs().mean()
    assert tight < 0.7 * loose, (float(tight), float(loose))
    # the CLI: an existing run is not overwritten
    line = error_line(capsys, "watermark", "finetune", tiny_run, "--mark", mark.path, "--key", KEY, "--out", out,
                      "--steps", "1", "--no-progress")
    assert "exists and is not empty" in line
    assert main(["watermark", "finetune", str(tiny_run), "--mark", str(mark.path), "--key", KEY, "--out",
                 str(tmp_path / "cli"), "--steps", "2", "--no-progress"]) == 0
    assert "bit accuracy of 256 samples" in capsys.readouterr().out


def test_the_differentiable_jpeg_follows_the_real_codec_and_passes_gradients():
    from genforge.provenance.watermark.jpeg import jpeg_proxy, real_jpeg
    generator = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(8, 3, 8, 8, generator=generator), size=32, mode="bilinear")
    for quality in (50, 90):
        real, proxy = real_jpeg(smooth, quality), jpeg_proxy(smooth, quality)
        assert (proxy - real).abs().mean() < 0.5 * (real - smooth).abs().mean()  # nearer the codec than the input
    x = smooth.clone().requires_grad_(True)
    jpeg_proxy(x, 75).sum().backward()
    assert x.grad.abs().mean() > 0.1


def test_a_colour_watermark_reads_other_sizes_and_modes(tmp_path):
    from genforge.provenance.watermark.nets import Embedder, Extractor, MarkConfig
    from genforge.provenance.watermark.store import save_watermark
    config = MarkConfig(image_shape=(3, 32, 32), bits=48, width=4)
    torch.manual_seed(0)
    save_watermark(tmp_path, Embedder(config).eval(), Extractor(config).eval(), "0123456789ab", {})
    colour = torch.rand(2, 3, 32, 32)
    assert embed(colour, tmp_path).shape == (2, 3, 32, 32)  # with its own key
    with pytest.raises(GenforgeError, match="this watermark marks 3x32x32 images"):
        embed(torch.rand(2, 1, 28, 28), tmp_path)
    grey, large, crop = torch.rand(1, 1, 32, 32), torch.rand(1, 3, 64, 64), torch.rand(1, 3, 30, 30)
    for images in (grey, large, crop):
        [r] = read_marks(images, tmp_path)
        assert r["bits"] == 48 and len(r["key"]) == 12 and r["matches"] == "0123456789ab"
    [r] = read_marks(crop, tmp_path)  # 3 x 3 places a 30x30 crop fits in a 32x32 frame
    assert r["p_value"] == pytest.approx(min(1.0, 9 * p_value(r["bits_agree"], 48)))
    with pytest.raises(GenforgeError, match="too small to read a watermark"):
        read_marks(torch.rand(1, 3, 6, 6), tmp_path)


def test_sample_and_edit_embed_the_key_and_verify_and_detect_read_it(mark, tiny_run, serve_runs, digits, tmp_path,
                                                                     capsys):
    """Both layers end to end: the signed manifest goes with a re-encode, the watermark stays."""
    watermark = ["--watermark", str(mark.path), "--watermark-key", KEY]
    # sampling: each PNG holds exactly the model's sample with the key embedded (the 2-step model's
    # samples are grey blurs, not digits, so this tiny watermark's reading is checked on edits below)
    assert main(["sample", str(tiny_run), "--n", "4", "--out", str(tmp_path / "sampled"), *watermark]) == 0
    expected = embed(genforge.load(tiny_run).sample(4, seed=0), mark, KEY).mul(255).round().byte()
    written = sorted((tmp_path / "sampled").iterdir())
    assert all(np.array_equal(np.asarray(Image.open(f)), expected[i, 0].numpy()) for i, f in enumerate(written))
    # editing: an inpainted box in real digits; the results carry the key, the real digits do not
    assert main(["edit", str(tiny_run), "--input", "mnist:test:0-5", "--op", "inpaint", "--box", "11,11,17,17",
                 "--out", str(tmp_path / "edited"), "--no-progress", "--search-steps", "2", "--restarts", "1",
                 *watermark]) == 0
    (tmp_path / "plain").mkdir()
    for i in range(6):
        Image.fromarray(digits[i, 0].mul(255).round().byte().numpy()).save(tmp_path / "plain" / f"{i}.png")
    Image.open(sorted((tmp_path / "edited").iterdir())[0]).save(tmp_path / "copy.jpg", quality=90)
    capsys.readouterr()
    assert main(["verify", str(tmp_path / "sampled"), str(tmp_path / "edited"), str(tmp_path / "plain"),
                 str(tmp_path / "copy.jpg"), "--watermark", str(mark.path), "--watermark-key", KEY, "--json"]) == 0
    results = {r["image"]: r for r in json.loads(capsys.readouterr().out)["images"]}
    edited = [r for name, r in results.items() if "/edited/" in name]
    assert len(edited) == 6 and sum(r["watermark"]["marked"] for r in edited) >= 5, edited
    assert all(r["status"] == "signed" and r["parameters"]["watermark"] is True for r in edited)
    assert not any(r["watermark"]["marked"] for name, r in results.items() if "/plain/" in name)
    copy = results[str(tmp_path / "copy.jpg")]
    assert copy["status"] == "none" and copy["watermark"]["marked"]  # the manifest is gone, the key is not
    sampled = next(r for name, r in results.items() if "/sampled/" in name)
    assert sampled["status"] == "signed" and sampled["parameters"]["watermark"] is True
    # the lines: each image with its reading, and a count
    assert main(["verify", str(tmp_path / "copy.jpg"), "--watermark", str(mark.path), "--watermark-key", KEY]) == 0
    out = capsys.readouterr().out
    assert f"; watermark {KEY} (" in out and "1 of 1 carry its key" in out
    # detect reads it too, beside the detector's verdict, in the line and the JSON
    assert main(["detect", str(serve_runs["detector"]), str(tmp_path / "copy.jpg"), str(tmp_path / "plain"),
                 "--watermark", str(mark.path), "--watermark-key", KEY, "--json", str(tmp_path / "d.json")]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if "copy.jpg" in line)
    assert f"watermark {KEY} (" in line and "1 of 7 carry its key" in out
    verdicts = json.loads((tmp_path / "d.json").read_text())["images"]
    assert [v["watermark"]["marked"] for v in verdicts] == [True] + [False] * 6


def test_watermark_flags_are_checked_before_any_work(mark, tiny_run, tmp_path, capsys):
    line = error_line(capsys, "sample", tiny_run, "--n", "2", "--out", tmp_path / "s", "--watermark-key", KEY)
    assert line == "genforge: error: --watermark-key is the key to embed: give the watermark too (--watermark DIR)"
    line = error_line(capsys, "sample", tiny_run, "--n", "2", "--out", tmp_path / "s", "--watermark", tmp_path)
    assert "is not a watermark directory" in line
    from genforge.provenance.watermark.nets import Embedder, Extractor, MarkConfig
    from genforge.provenance.watermark.store import save_watermark
    colour = MarkConfig(image_shape=(3, 32, 32), bits=8, width=4)  # untrained: only its shape matters here
    save_watermark(tmp_path / "colour", Embedder(colour), Extractor(colour), "ab", {})
    line = error_line(capsys, "sample", tiny_run, "--n", "2", "--out", tmp_path / "s", "--watermark", tmp_path / "colour")
    assert line == (f"genforge: error: --watermark {tmp_path / 'colour'} marks 3x32x32 images (channels x height x "
                    "width); this model makes 1x28x28")
    line = error_line(capsys, "edit", tiny_run, "--input", "mnist:test:0-1", "--op", "reconstruct", "--out",
                      tmp_path / "e", "--watermark", mark.path, "--watermark-key", "abc")
    assert "has 3 hex digits" in line
    line = error_line(capsys, "verify", tmp_path / "nothing.png", "--watermark-key", KEY)
    assert "give the watermark too" in line
    if importlib.util.find_spec("fastapi"):  # the server: refused before any model loads or port opens
        line = error_line(capsys, "serve", tiny_run, "--watermark-key", KEY)
        assert line == "genforge: error: --watermark-key is the key to embed: give the watermark too (--watermark DIR)"
        assert "has 3 hex digits" in error_line(capsys, "serve", tiny_run, "--watermark", mark.path, "--watermark-key", "abc")
    assert not (tmp_path / "s").exists()


def test_the_server_marks_what_it_makes_and_reads_what_it_is_sent(mark, serve_runs, digits):
    """genforge serve --watermark: samples and edit results carry the key, /v1/detect reads it."""
    pytest.importorskip("fastapi")
    import base64
    from fastapi.testclient import TestClient
    from genforge.serve.app import create_app
    from genforge.serve.config import ServeConfig
    from genforge.serve.registry import Registry
    registry = Registry.load([serve_runs["cvae"], serve_runs["cgan"]], serve_runs["detector"])
    local = "http://127.0.0.1"
    with TestClient(create_app(ServeConfig(), registry, Marker(mark.path, KEY)), base_url=local) as marked, \
            TestClient(create_app(ServeConfig(), registry), base_url=local) as plain:
        assert [m["watermarked"] for m in marked.get("/v1/models").json()["models"]] == [True, True]
        assert not any(m["watermarked"] for m in plain.get("/v1/models").json()["models"])
        # a sample is the unmarked server's same-seed sample with the key embedded, in the .npz too (to one
        # 8-bit level: the server marks the model's output before it is rounded, this the rounded copy)
        body = {"n": 4, "seed": 5, "format": "npz"}
        arrays = [np.load(io.BytesIO(c.post("/v1/models/cvae/sample", json=body).content))["images"].astype(int)
                  for c in (plain, marked)]
        expected = embed(torch.from_numpy(arrays[0]).permute(0, 3, 1, 2).float() / 255, mark, KEY)
        expected = expected.mul(255).round().permute(0, 2, 3, 1).numpy().astype(int)
        assert np.abs(arrays[1] - expected).max() <= 1 and np.abs(arrays[1] - arrays[0]).max() > 3
        # an inpainted box in real digits: the results carry the key (the manifest says so too)
        edited = marked.post("/v1/models/cvae/edit/inpaint", data={"test_indices": "0,1,2,3,4,5", "box": "11,11,17,17",
                                                                   "search_steps": "2", "restarts": "1"}).json()
        results = [base64.b64decode(text) for text in edited["images"]]
        readings = [read_marks(torch.from_numpy(np.asarray(Image.open(io.BytesIO(r))).copy())[None, None].float() / 255,
                               mark, KEY)[0] for r in results]
        assert sum(r["marked"] for r in readings) >= 5, readings
        # /v1/detect: a JPEG of a marked result is read as marked, a real digit is not
        jpeg = io.BytesIO()
        Image.open(io.BytesIO(results[0])).save(jpeg, format="JPEG", quality=90)
        real = io.BytesIO()
        Image.fromarray(digits[7, 0].mul(255).round().byte().numpy()).save(real, format="PNG")
        files = [("images", ("copy.jpg", jpeg.getvalue(), "image/jpeg")), ("images", ("real.png", real.getvalue(), "image/png"))]
        verdicts = marked.post("/v1/detect", files=files).json()["results"]
        assert [v["watermark"]["marked"] for v in verdicts] == [True, False]
        assert verdicts[0]["watermark"]["matches"] == KEY and verdicts[0]["provenance"]["status"] == "none"
        assert all(v["watermark"] is None for v in plain.post("/v1/detect", files=files).json()["results"])
        tiny = io.BytesIO()
        Image.new("L", (6, 6), 40).save(tiny, format="PNG")  # too small to hold a mark: judged, not read
        answer = marked.post("/v1/detect", files=[("images", ("tiny.png", tiny.getvalue(), "image/png"))])
        assert answer.status_code == 200 and answer.json()["results"][0]["watermark"] is None
