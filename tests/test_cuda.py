"""On a CUDA device (skipped where there is none, as in CI): every model trains there, its
checkpoint resumes and samples on a CPU with the same images, priors, evaluation and every
edit run with the model on the GPU, and a detector trains there and judges as it does on a CPU.

GENFORGE_TEST_DEVICE=cpu runs the same checks on the CPU (to check the tests themselves)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import genforge
from genforge.detect import DetectTrainConfig, load_detector, train_detector
from genforge.edit import Editor, FitConfig, centre_mask, read_images
from genforge.metrics.evaluate import evaluate_model
from genforge.models import MODELS, build_model
from genforge.train import RunDir, TrainConfig, train
from genforge.train.checkpoint import read_safetensors

DEVICE = os.environ.get("GENFORGE_TEST_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE.startswith("cuda") and not torch.cuda.is_available(),
                                reason="needs a CUDA device")

QUICK_SEARCH = FitConfig(steps=20, restarts=2)


def train_steps(name, data, out, steps, device, resume=False):
    torch.manual_seed(0)
    model = build_model(name, image_shape=data.shape)
    config = TrainConfig(steps=steps, batch_size=64, log_every=10, sample_every=10_000, device=device)
    train(model, data, out, config, resume=resume, progress=False)
    return model


def logged(out):
    return [json.loads(line) for line in RunDir(out).metrics.read_text().splitlines()]


def on_device(model):
    return model.device.type == torch.device(DEVICE).type


# The PyTorch examples' DCGAN is built for 64x64 (or 32x32) only; these runs are on 28x28 MNIST.
@pytest.mark.parametrize("name", sorted(n for n in MODELS if n != "ref-dcgan-torch"))
def test_model_trains_on_cuda_and_samples_the_same_on_cpu(name, mnist_small, tmp_path):
    model = train_steps(name, mnist_small, tmp_path, steps=40, device=DEVICE)
    assert on_device(model)
    losses = [v for row in logged(tmp_path) for k, v in row.items() if k.startswith("loss")]
    assert len(losses) >= 4 and torch.isfinite(torch.tensor(losses)).all(), losses
    labels = torch.arange(8) % 10 if model.is_conditional else None
    on_gpu = genforge.load(tmp_path, DEVICE).sample(8, seed=1, labels=labels)
    on_cpu = genforge.load(tmp_path, "cpu").sample(8, seed=1, labels=labels)
    assert on_gpu.device.type == "cpu" and on_gpu.shape == (8, 1, 28, 28)
    # TF32 convolutions on the GPU differ from the CPU's float32 in the third decimal.
    torch.testing.assert_close(on_gpu, on_cpu, atol=0.03, rtol=0)


@pytest.mark.parametrize("name", ["vae", "cgan"])
def test_a_run_trained_on_cuda_resumes_on_cpu_and_back(name, mnist_small, tmp_path):
    train_steps(name, mnist_small, tmp_path, steps=20, device=DEVICE)
    train_steps(name, mnist_small, tmp_path, steps=40, device="cpu", resume=True)
    model = train_steps(name, mnist_small, tmp_path, steps=60, device=DEVICE, resume=True)
    assert on_device(model)
    _, meta = read_safetensors(RunDir(tmp_path).checkpoint)
    assert json.loads(meta["state"])["step"] == 60
    assert [row["step"] for row in logged(tmp_path)][-1] == 60


def test_api_trains_a_cvae_on_cuda_fits_its_prior_and_samples_a_class(tmp_path):
    model = genforge.train("cvae", "mnist", tmp_path, steps=150, device=DEVICE, progress=False, report=False)
    assert model.device.type == torch.device(DEVICE).type and model.prior_kind == "gmm"
    sevens = model.sample(16, labels=7)
    assert sevens.shape == (16, 1, 28, 28) and 0 <= sevens.min() and sevens.max() <= 1
    scores = evaluate_model(model, n=500, nll_images=100, nll_k=10)
    assert scores["fid"] > 0 and scores["recon_mse"] > 0


@pytest.fixture(scope="module")
def gpu_runs(tmp_path_factory):
    runs = {}
    for name in ("vae", "cgan"):
        out = tmp_path_factory.mktemp(name)
        genforge.train(name, "mnist", out, steps=150, device=DEVICE, progress=False, report=False)
        runs[name] = out
    return runs


def test_every_edit_runs_with_the_model_on_the_device(gpu_runs):
    digits = read_images("mnist:test:0-7", (1, 28, 28))
    x, labels = digits.images.float() / 255, digits.labels
    editor = Editor(genforge.load(gpu_runs["vae"], DEVICE), QUICK_SEARCH)
    mask = centre_mask(28, 14)
    outputs = {
        "reconstruct": editor.reconstruct(x),
        "interpolate": editor.interpolate(x[:2], x[2:4], steps=4)[-1],
        "attribute": editor.attribute(x, target=8),
        "thickness": editor.attribute(x, target="thickness"),
        "inpaint": editor.inpaint(x, mask),
    }
    dirs, scales = editor.directions("pca", 3, x)
    outputs["traverse"] = editor.traverse(editor.invert(x[:1])[0], dirs, scales, steps=3).flatten(0, 1)
    gan = Editor(genforge.load(gpu_runs["cgan"], DEVICE), QUICK_SEARCH, hybrid=True)
    outputs["swap-class"] = gan.swap_class(x, labels, 3)
    outputs["gan inpaint"] = gan.inpaint(x, mask, labels)
    outputs["gan inpaint, label found"] = gan.inpaint(x, mask)
    dirs, scales = gan.directions("sefa", 3)
    outputs["sefa"] = gan.traverse(torch.zeros(dirs.shape[1]), dirs, scales, steps=3,
                                   labels=torch.tensor([3])).flatten(0, 1)
    for op, images in outputs.items():
        assert images.shape[1:] == (1, 28, 28) and torch.isfinite(images).all(), op
        assert 0 <= images.min() and images.max() <= 1, op
    realism = gan.realism(outputs["swap-class"], torch.full((8,), 3))
    assert realism.shape == (8,) and ((0 <= realism) & (realism <= 1)).all()
    # Unblended inpainting keeps every pixel outside the mask, on the GPU too.
    outside = mask.expand_as(x) == 0
    assert torch.equal(outputs["inpaint"].cpu()[outside], x[outside])


def test_the_edit_command_runs_its_latent_search_on_the_device(gpu_runs, tmp_path):
    out = tmp_path / "filled.npz"
    done = subprocess.run([sys.executable, "-m", "genforge", "edit", gpu_runs["cgan"], "--device", DEVICE,
                           "--input", "mnist:test:0-3", "--op", "inpaint", "--box", "7,7,21,21",
                           "--search-steps", "10", "--restarts", "1", "--no-progress", "--out", out],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with np.load(out) as saved:
        images = saved["images"]
    assert images.shape[0] == 4


def test_a_detector_trains_on_the_device_and_judges_the_same_on_cpu(gpu_runs, mnist_small, tmp_path):
    out = tmp_path / "det"
    config = DetectTrainConfig(steps=60, batch_size=32, width=8, fakes_per_source=128, device=DEVICE)
    detector, card = train_detector(mnist_small, list(gpu_runs.values()), out, config, progress=False)
    assert next(detector.parameters()).device.type == torch.device(DEVICE).type
    assert card["training"]["device"].startswith(torch.device(DEVICE).type) and card["training"]["steps"] == 60
    digits = read_images("mnist:test:0-15", (1, 28, 28)).images.float() / 255
    on_device, maps = load_detector(out, DEVICE)[0].predict(digits)
    on_cpu, _ = load_detector(out, "cpu")[0].predict(digits)
    assert on_device.device.type == "cpu" and maps.shape == (16, 1, 28, 28)
    torch.testing.assert_close(on_device, on_cpu, atol=0.02, rtol=0)
    judged = subprocess.run([sys.executable, "-m", "genforge", "detect", out, "mnist:test:0-3", "--device", DEVICE],
                            capture_output=True, text=True, timeout=300)
    assert judged.returncode == 0 and "4 judged" in judged.stdout, judged.stderr
