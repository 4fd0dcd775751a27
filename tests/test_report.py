"""The run report tells the truth: its samples are what the model gives (through the fitted
latent prior, named in words), per class for a conditional model; the last evaluation appears
beside its real-vs-real floor, and edit pictures added with `genforge edit --report` appear too."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import genforge
from genforge.cli import main
from genforge.report.grid import make_grid
from genforge.report.samples import CLASS_GRID_SCALE, PER_CLASS, SEED

TINY = dict(steps=20, batch_size=32, progress=False, log_every=5, sample_every=1000)


def png(path) -> np.ndarray:
    arr = np.asarray(Image.open(path))
    return arr[..., None] if arr.ndim == 2 else arr


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory, mnist_train):
    """A VAE trained a few steps without a prior, then given a small GMM by `genforge.fit_prior`."""
    out = tmp_path_factory.mktemp("vae")
    genforge.train("vae", "mnist", out, width=8, latent_dim=4, prior="none", **TINY)
    before = (out / "report.md").read_text()
    genforge.fit_prior(out, "gmm", components=3, max_codes=1000)
    return out, before


def test_autoencoder_report_shows_samples_from_its_fitted_prior(vae_run):
    out, before = vae_run
    # Trained with --prior none, the report said so; fitting a prior rewrote it.
    assert "the standard normal N(0, I) (no latent prior fitted" in before and "gmm" not in before.split("## Losses")[0]
    report = (out / "report.md").read_text()
    assert "a Gaussian mixture (`gmm`: 3 components, full covariances)" in report
    model = genforge.load(out)
    assert model.prior_kind == "gmm"
    # The pictures are the model's samples, pixel for pixel: through the prior, and from N(0, I) beside them.
    assert np.array_equal(png(out / "samples.png"), make_grid(model.sample(64, seed=SEED)))
    assert np.array_equal(png(out / "samples_normal.png"), make_grid(model.sample(64, seed=SEED, prior="none")))
    assert not np.array_equal(png(out / "samples.png"), png(out / "samples_normal.png"))
    assert "(samples.png)" in report and "(samples_normal.png)" in report


def test_report_grid_is_what_genforge_sample_writes(vae_run, tmp_path):
    out, _ = vae_run
    assert main(["sample", str(out), "--n", "64", "--grid", "--out", str(tmp_path / "g.png")]) == 0
    assert np.array_equal(png(tmp_path / "g.png"), png(out / "samples.png"))


def test_conditional_report_has_one_labelled_row_per_class(tmp_path, mnist_train):
    out = tmp_path / "cgan"
    genforge.train("cgan", "mnist", out, g_width=8, d_width=8, latent_dim=8, **TINY)
    model, report = genforge.load(out), (out / "report.md").read_text()
    rows = torch.cat([model.sample(PER_CLASS, seed=SEED, labels=k) for k in range(10)])
    expected = make_grid(rows, nrow=PER_CLASS, scale=CLASS_GRID_SCALE)
    picture = png(out / "samples.png")
    # The grid sits right of a white margin of class names; ten rows of PER_CLASS images.
    assert picture.shape[0] == expected.shape[0] and picture.shape[1] > expected.shape[1]
    assert np.array_equal(picture[:, -expected.shape[1]:], expected)
    margin = picture[:, :-expected.shape[1]]
    assert (margin < 128).any() and (margin == 255).mean() > 0.5  # names written in black on white
    assert "One row per class (top to bottom: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9)" in report
    assert "the standard normal N(0, I), the prior the model was trained with" in report
    assert not (out / "samples_normal.png").exists()


def test_stored_evaluation_appears_with_its_floor_and_goes_stale(vae_run, tmp_path, capsys, monkeypatch):
    out, _ = vae_run
    # Real metrics on 500 images of each split instead of 10,000-60,000: seconds, not minutes.
    from genforge.metrics import evaluate
    full = evaluate.real_split
    monkeypatch.setattr(evaluate, "real_split", lambda dataset, split, n=None, data_dir=None, *args, **kw:
                        full(dataset, split, min(n or 500, 500), data_dir, *args, **kw))
    assert main(["eval", str(out), "--n", "200", "--nll-images", "0"]) == 0
    assert "eval.json" in capsys.readouterr().out
    stored = json.loads((out / "eval.json").read_text())
    report = (out / "report.md").read_text()
    section = report.split("## Evaluation")[1].split("\n## ")[0]
    assert "| metric | value | real-vs-real floor |" in section and "Stale" not in section
    for key in ("fid", "precision", "recall", "coverage"):
        row = next(line for line in section.splitlines() if line.startswith(f"| {key} |"))
        assert row.split(" | ")[1:3] == [f"{stored[key]:.4g}", f"{stored['floor'][key]:.4g}"]
    assert "200 samples (z from the gmm prior)" in section
    # A new prior changes what the model samples: the stored numbers are then marked as stale.
    copy = shutil.copytree(out, tmp_path / "refit")
    genforge.fit_prior(copy, "gmm", components=2, max_codes=1000)
    assert "**Stale**" in (copy / "report.md").read_text().split("## Evaluation")[1]


def test_edit_report_adds_its_picture_and_summary(vae_run, tmp_path, capsys):
    out, _ = vae_run
    picture = tmp_path / "rec.png"
    assert main(["edit", str(out), "--input", "mnist:test:0-7", "--op", "reconstruct", "--out", str(picture),
                 "--report", "--no-progress"]) == 0
    assert np.array_equal(png(out / "edits" / "reconstruct-of-mnist-test-0-7.png"), png(picture))
    report = (out / "report.md").read_text()
    assert "### reconstruct of mnist:test:0-7" in report and "(edits/reconstruct-of-mnist-test-0-7.png)" in report
    assert "Top: the inputs; below: their reconstructions." in report and "PSNR" in report
    assert str(picture) not in report  # the caption leaves out where the edit wrote its own copy
    capsys.readouterr()
    assert main(["edit", str(out), "--input", "mnist:test:0-7", "--op", "reconstruct", "--out",
                 str(tmp_path / "rec.npz"), "--report"]) == 2
    assert "--report" in capsys.readouterr().err
