"""The training loop: exact resume, Ctrl-C, NaN, atomic checkpoints, and bad run directories."""

import json
import os
import signal

import pytest
import torch

import genforge
from genforge.errors import RunError, TrainingDiverged, TrainingInterrupted
from genforge.models import build_model
from genforge.train import RunDir, TrainConfig, train
from genforge.train import checkpoint as ckpt

TINY = dict(g_width=8, d_width=8, latent_dim=8)


def run_dcgan(data, out, steps, resume=False, model=None, **cfg):
    torch.manual_seed(0)
    model = model or build_model("dcgan", **TINY)
    config = TrainConfig(steps=steps, batch_size=32, log_every=5, sample_every=1000, **cfg)
    train(model, data, out, config, resume=resume, progress=False)
    return model


def state_of(out):
    tensors, meta = ckpt.read_safetensors(RunDir(out).checkpoint)
    return tensors, json.loads(meta["state"])


def assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_interrupted_and_resumed_run_equals_uninterrupted_run(mnist_small, tmp_path, monkeypatch):
    run_dcgan(mnist_small, tmp_path / "straight", steps=30)

    # Ctrl-C (a real SIGINT) during step 12: the loop finishes that step, checks its losses,
    # saves and raises.
    torch.manual_seed(0)
    model = build_model("dcgan", **TINY)
    original, calls = model.train_step, {"n": 0}

    def step_with_ctrl_c(*args):
        calls["n"] += 1
        if calls["n"] == 12:
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args)

    monkeypatch.setattr(model, "train_step", step_with_ctrl_c)
    with pytest.raises(TrainingInterrupted, match="interrupted at step 12"):
        run_dcgan(mnist_small, tmp_path / "split", steps=30, model=model)
    tensors, state = state_of(tmp_path / "split")
    assert state["step"] == 12
    assert any(k.startswith("optim.generator.") for k in tensors)

    run_dcgan(mnist_small, tmp_path / "split", steps=30, resume=True)
    straight, straight_state = state_of(tmp_path / "straight")
    resumed, resumed_state = state_of(tmp_path / "split")
    assert resumed_state["step"] == straight_state["step"] == 30
    # Weights, BatchNorm buffers, Adam moments and step counts, RNG: all bit-identical.
    assert_same_tensors(straight, resumed)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(mnist_small, tmp_path, monkeypatch):
    model = build_model("vae", width=8, latent_dim=4)
    original, calls = model.loss, {"n": 0}

    def loss_going_nan(x, y=None):
        calls["n"] += 1
        out = original(x, y)
        if calls["n"] > 12:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(model, "loss", loss_going_nan)
    config = TrainConfig(steps=100, batch_size=32, log_every=5, checkpoint_minutes=1e-9, sample_every=1000,
                         max_rollbacks=0)
    with pytest.raises(TrainingDiverged, match="loss became nan by step 15"):
        train(model, mnist_small, tmp_path, config, progress=False)
    tensors, state = state_of(tmp_path)
    assert state["step"] == 10  # the last checked, finite step
    assert all(torch.isfinite(t).all() for k, t in tensors.items() if t.is_floating_point())
    assert genforge.load(tmp_path).sample(2).isfinite().all()


def test_divergence_rolls_back_with_lower_learning_rate_then_finishes(mnist_small, tmp_path, monkeypatch):
    model = build_model("vae", width=8, latent_dim=4)
    original, calls = model.loss, {"n": 0}

    def loss_nan_for_a_while(x, y=None):
        calls["n"] += 1
        out = original(x, y)
        if 13 <= calls["n"] <= 15:  # a burst of bad steps, as after a bad batch
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(model, "loss", loss_nan_for_a_while)
    config = TrainConfig(steps=30, batch_size=32, log_every=5, checkpoint_minutes=1e-9, sample_every=1000)
    train(model, mnist_small, tmp_path, config, progress=False)
    events = [json.loads(line) for line in RunDir(tmp_path).events.read_text().splitlines()]
    assert [(e["step"], e["back_to_step"]) for e in events] == [(15, 10)]
    tensors, state = state_of(tmp_path)
    assert state["step"] == 30 and state["rollbacks"] == 1
    _, meta = ckpt.read_safetensors(RunDir(tmp_path).checkpoint)
    assert json.loads(meta["param_groups"])["model"][0]["lr"] == pytest.approx(model.config.lr * 0.5)
    assert all(torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point())


def test_persistent_divergence_stops_after_the_allowed_rollbacks(mnist_small, tmp_path, monkeypatch):
    model = build_model("vae", width=8, latent_dim=4)
    monkeypatch.setattr(model, "loss", lambda x, y=None: {"loss": model.encoder(x).sum() * float("inf")})
    config = TrainConfig(steps=100, batch_size=32, log_every=5, sample_every=1000, max_rollbacks=2)
    with pytest.raises(TrainingDiverged, match="by step 5"):
        train(model, mnist_small, tmp_path, config, progress=False)
    assert len(RunDir(tmp_path).events.read_text().splitlines()) == 2


def test_divergence_monitor_signs():
    from genforge.train.divergence import DivergenceMonitor
    healthy = DivergenceMonitor()
    assert all(healthy.check({"loss_d": 1.2 + 0.1 * (i % 3), "d_real": 0.7, "d_fake": 0.3}) is None for i in range(50))
    assert "exploded" in healthy.check({"loss_d": 900.0, "d_real": 0.7, "d_fake": 0.3})
    winning = DivergenceMonitor(d_patience=8)
    reasons = [winning.check({"loss_d": 0.01, "d_real": 0.999, "d_fake": 0.001}) for _ in range(8)]
    assert reasons[:7] == [None] * 7 and "discriminator wins completely" in reasons[7]
    # One confident interval among healthy ones is not a divergence.
    flicker = DivergenceMonitor(d_patience=3)
    seq = [(0.999, 0.001), (0.8, 0.2), (0.999, 0.001), (0.999, 0.001), (0.7, 0.3)]
    assert all(flicker.check({"d_real": r, "d_fake": f}) is None for r, f in seq)


def test_atomic_write_keeps_old_file_when_write_fails(tmp_path, monkeypatch):
    target = tmp_path / "w.bin"
    ckpt.atomic_write(target, b"old")

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.os, "replace", crash)
    with pytest.raises(OSError):
        ckpt.atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]  # no temp file left behind


def test_new_run_refuses_to_overwrite_and_resume_needs_a_checkpoint(mnist_small, tmp_path):
    run_dcgan(mnist_small, tmp_path, steps=5)
    with pytest.raises(RunError, match="--resume"):
        run_dcgan(mnist_small, tmp_path, steps=5)
    with pytest.raises(RunError, match="nothing to resume"):
        run_dcgan(mnist_small, tmp_path / "empty", steps=5, resume=True)


def test_checkpoint_from_another_config_is_refused(mnist_small, tmp_path):
    run_dcgan(mnist_small, tmp_path, steps=5)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model_config"]["g_width"] = 16
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(RunError, match="does not match its model config: shape of generator"):
        genforge.load(tmp_path)


def test_damaged_weights_and_non_runs_are_refused(tmp_path, mnist_small):
    with pytest.raises(RunError, match="does not exist"):
        genforge.load(tmp_path / "missing")
    with pytest.raises(RunError, match="not a genforge run"):
        genforge.load(tmp_path)
    run_dcgan(mnist_small, tmp_path / "run", steps=5)
    weights = tmp_path / "run" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated
    with pytest.raises(RunError, match="not a readable safetensors file"):
        genforge.load(tmp_path / "run")


def test_budget_in_epochs_and_minutes(mnist_small, tmp_path):
    data = mnist_small.subset(torch.arange(320))
    model = build_model("vae", width=8, latent_dim=4)
    result = train(model, data, tmp_path / "e", TrainConfig(epochs=2, batch_size=32, log_every=5), progress=False)
    assert result["step"] == 20  # 10 steps per epoch
    model = build_model("vae", width=8, latent_dim=4)
    result = train(model, data, tmp_path / "m", TrainConfig(minutes=0.02, batch_size=32), progress=False)
    assert 1.2 <= result["elapsed_s"] < 10


def test_bad_budget_values_are_rejected():
    for bad in ({"steps": 0}, {"epochs": -1}, {"minutes": 0}, {"batch_size": 0}):
        with pytest.raises(ValueError, match=f"training config: {next(iter(bad))} must be a"):
            TrainConfig(**bad)


def test_bfloat16_training_lowers_the_loss_and_keeps_float32_weights(mnist_small, tmp_path):
    torch.manual_seed(0)
    model = build_model("vae", width=8, latent_dim=4)
    config = TrainConfig(steps=60, batch_size=32, log_every=10, sample_every=1000, precision="bf16")
    train(model, mnist_small, tmp_path / "r", config, progress=False)
    rows = [json.loads(line) for line in RunDir(tmp_path / "r").metrics.read_text().splitlines()]
    assert rows[-1]["loss"] < 0.8 * rows[0]["loss"]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert RunDir(tmp_path / "r").read_config()["train"]["precision_used"] == "bf16"


def test_precision_names_and_auto(monkeypatch):
    from genforge.train import precision
    assert precision.resolve_precision("fp32") == "fp32" and precision.resolve_precision("bf16") == "bf16"
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: False)
    assert precision.resolve_precision("auto", "cpu") == "fp32"  # emulated bf16 would be slower
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: True)
    assert precision.resolve_precision("auto", "cpu") == "bf16"
    assert precision.resolve_precision("auto", "cuda") == "fp32"  # not measured on a GPU yet
    with pytest.raises(ValueError, match="precision must be one of"):
        TrainConfig(steps=1, precision="fp16")
