"""The `genforge` command end to end on real MNIST, and its answers to bad input."""

import gzip
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from genforge.cli import COMMANDS, main
from conftest import SHARED_DATA

TINY_VAE = ["--model", "vae", "--dataset", "mnist", "--set", "width=8", "--set", "latent_dim=4",
            "--batch-size", "32", "--no-progress"]


def cli(*args):
    return subprocess.run([sys.executable, "-m", "genforge", *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def error_line(capsys, *args) -> str:
    """Runs the CLI in-process, expects exit 2 and exactly one line on stderr."""
    assert main(list(map(str, args))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, mnist_train):
    out = tmp_path_factory.mktemp("run")
    assert main(["train", *TINY_VAE, "--steps", "40", "--log-every", "10", "--sample-every", "20",
                 "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("command", [None] + [c.__name__.rsplit(".", 1)[1] for c in COMMANDS])
def test_every_command_has_help(command, capsys):
    assert main(([command] if command else []) + ["--help"]) == 0
    assert "usage: genforge" in capsys.readouterr().out


def test_train_writes_a_complete_run(trained_run, capsys):
    files = {p.name for p in trained_run.iterdir()}
    assert {"config.json", "model.safetensors", "checkpoint.safetensors", "metrics.jsonl", "report.md",
            "losses.png", "samples.png", "samples"} <= files
    assert sorted(p.name for p in (trained_run / "samples").iterdir()) == ["step_0000020.png", "step_0000040.png"]
    cfg = json.loads((trained_run / "config.json").read_text())
    assert cfg["model"] == "vae" and cfg["model_config"]["width"] == 8 and cfg["data"]["dataset"] == "mnist"
    rows = [json.loads(line) for line in (trained_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40]
    assert rows[-1]["loss"] < rows[0]["loss"] and rows[-1]["img_per_s"] > 0
    report = (trained_run / "report.md").read_text()
    assert "![samples" in report and "losses.png" in report

    assert main(["info", str(trained_run)]) == 0
    out = capsys.readouterr().out
    assert "model:      vae" in out and "40 steps" in out and "last losses: loss=" in out


def test_sample_npz_png_and_grid_are_reproducible(trained_run, tmp_path):
    assert main(["sample", str(trained_run), "--n", "7", "--seed", "3", "--out", str(tmp_path / "a.npz")]) == 0
    assert main(["sample", str(trained_run), "--n", "7", "--seed", "3", "--out", str(tmp_path / "b.npz")]) == 0
    assert main(["sample", str(trained_run), "--n", "7", "--seed", "4", "--out", str(tmp_path / "c.npz")]) == 0
    a, b, c = (np.load(tmp_path / f"{k}.npz")["images"] for k in "abc")
    assert a.dtype == np.uint8 and a.shape == (7, 28, 28, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)

    assert main(["sample", str(trained_run), "--n", "7", "--seed", "3", "--out", str(tmp_path / "png")]) == 0
    pngs = sorted((tmp_path / "png").glob("*.png"))
    assert len(pngs) == 7
    assert np.array_equal(np.asarray(Image.open(pngs[2])), a[2, ..., 0])

    assert main(["sample", str(trained_run), "--n", "16", "--grid", "--out", str(tmp_path / "g.png")]) == 0
    assert Image.open(tmp_path / "g.png").size == (4 * 30 + 2, 4 * 30 + 2)


def test_resume_continues_to_a_larger_budget(trained_run, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    assert main(["train", "--resume", "--out", str(run), "--steps", "60", "--log-every", "10", "--no-progress"]) == 0
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [10, 20, 30, 40, 50, 60]


def test_bad_input_gets_one_clear_line(trained_run, tmp_path, capsys):
    assert "unknown data set" in error_line(capsys, "train", *TINY_VAE[:2], "--dataset", "cifar99", "--out", tmp_path / "x")
    assert "is not a genforge run" in error_line(capsys, "sample", tmp_path, "--out", tmp_path / "s")
    assert "does not exist" in error_line(capsys, "info", tmp_path / "nope")
    assert "must be positive" in error_line(capsys, "sample", trained_run, "--n", "0", "--out", tmp_path / "s")
    assert "must be positive" in error_line(capsys, "sample", trained_run, "--n", "-3", "--out", tmp_path / "s")
    assert "not conditional" in error_line(capsys, "sample", trained_run, "--label", "3", "--out", tmp_path / "s")
    assert "--model is required" in error_line(capsys, "train", "--out", tmp_path / "x")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no readable .png/.jpg/.jpeg images" in error_line(capsys, "train", "--model", "vae", "--dataset", f"folder:{empty}",
                                              "--out", tmp_path / "x").lower()


def test_a_device_this_machine_lacks_gets_one_clear_line(trained_run, tmp_path, capsys):
    assert "is not a device" in error_line(capsys, "sample", trained_run, "--device", "gpu", "--out", tmp_path / "s")
    assert "runs on cpu, cuda or mps" in error_line(capsys, "eval", trained_run, "--device", "meta")
    commands = [["train", *TINY_VAE, "--out", tmp_path / "x"], ["sample", trained_run, "--out", tmp_path / "s"],
                ["eval", trained_run], ["edit", trained_run, "--input", "mnist:test:0-1", "--op", "reconstruct",
                                        "--out", tmp_path / "e"]]
    for command in commands:
        if torch.cuda.is_available():
            wrong = f"cuda:{torch.cuda.device_count()}"
            assert "CUDA device(s)" in error_line(capsys, *command, "--device", wrong)
        else:
            assert "no CUDA device here" in error_line(capsys, *command, "--device", "cuda")
    assert not (tmp_path / "x").exists()


def test_missing_and_truncated_idx_files(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GENFORGE_DATA", str(tmp_path / "nowhere"))
    line = error_line(capsys, "train", *TINY_VAE, "--out", tmp_path / "x")
    assert "not found" in line and "GENFORGE_DATA" in line and "--data-dir" in line

    broken = tmp_path / "mnist"
    broken.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        data = gzip.decompress((SHARED_DATA / "mnist" / f"{name}.gz").read_bytes())
        (broken / name).write_bytes(data[:len(data) // 2] if "images" in name else data)
    line = error_line(capsys, "train", *TINY_VAE, "--data-dir", broken, "--out", tmp_path / "x")
    assert "train-images-idx3-ubyte" in line and "truncated" in line.lower()

    (broken / "train-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x05" + bytes(100))
    line = error_line(capsys, "train", *TINY_VAE, "--data-dir", broken, "--out", tmp_path / "x")
    assert "train-images-idx3-ubyte" in line


def test_folder_of_images_trains(tmp_path, caplog):
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(40):
            Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(tmp_path / "imgs" / label / f"{i}.png")
    (tmp_path / "imgs" / "cats" / "broken.png").write_bytes(b"not a png")
    assert main(["train", "--model", "dcgan", "--dataset", f"folder:{tmp_path / 'imgs'}", "--set", "g_width=8",
                 "--set", "d_width=8", "--batch-size", "16", "--steps", "3", "--no-progress",
                 "--out", str(tmp_path / "run")]) == 0
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["model_config"]["image_shape"] == [3, 32, 32]
    assert cfg["data"]["num_images"] == 80 and cfg["data"]["classes"] == ["cats", "dogs"]
    assert "skipped 1 unreadable" in caplog.text


def test_errors_reach_the_shell_without_traceback(tmp_path):
    result = cli("sample", tmp_path, "--out", tmp_path / "x")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr


def _train_in_background(out, *extra):
    return subprocess.Popen([sys.executable, "-m", "genforge", "train", *TINY_VAE, "--steps", "100000",
                             "--log-every", "5", "--checkpoint-minutes", "0.0001", "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, timeout=60, nonempty=False):
    end = time.time() + timeout
    while not path.exists() or (nonempty and not path.stat().st_size):
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])  # SIGTERM: what torchrun and schedulers send
def test_ctrl_c_saves_a_checkpoint_and_exits_130(tmp_path, sig):
    proc = _train_in_background(tmp_path)
    _wait_for(tmp_path / "checkpoint.safetensors")
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted at step" in err and "--resume" in err and "Traceback" not in err
    step = int(err.split("interrupted at step ")[1].split(";")[0])
    info = cli("info", tmp_path)
    assert f"{step} steps" in info.stdout


def test_kill_9_at_any_moment_leaves_a_loadable_checkpoint(tmp_path):
    """Killed repeatedly while checkpointing many times a second; each time the run loads and resumes."""
    import genforge
    rng = np.random.default_rng(0)
    for attempt in range(3):
        proc = _train_in_background(tmp_path, *(["--resume"] if attempt else []))
        _wait_for(tmp_path / "checkpoint.safetensors")
        if attempt == 0:  # at least one logged step to read the count from, however busy the machine
            _wait_for(tmp_path / "metrics.jsonl", nonempty=True)
        time.sleep(1.0 + rng.uniform(0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert genforge.load(tmp_path).sample(2).isfinite().all()
    step = int(cli("info", tmp_path).stdout.split("trained:")[1].split()[0])
    result = cli("train", "--resume", "--out", tmp_path, "--steps", step + 5, "--log-every", "5", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert f"{step + 5} steps" in cli("info", tmp_path).stdout
    assert not list(tmp_path.glob(".*.tmp"))  # what a killed writer left is cleaned up


def test_train_precision_is_recorded_kept_on_resume_and_checked(tmp_path, capsys):
    out = tmp_path / "bf16"
    assert main(["train", *TINY_VAE, "--steps", "10", "--precision", "bf16", "--prior", "none",
                 "--out", str(out)]) == 0
    assert main(["train", "--resume", "--steps", "20", "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "config.json").read_text())["train"]
    assert config["precision"] == "bf16" and config["precision_used"] == "bf16"
    assert "| precision | bf16 |" in (out / "report.md").read_text()
    capsys.readouterr()
    assert main(["train", *TINY_VAE, "--precision", "fp16", "--out", str(tmp_path / "x")]) == 2
    assert "fp16" in capsys.readouterr().err
