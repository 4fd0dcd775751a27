"""Data-parallel training with torchrun on 2 CPU processes (gloo): what issue 31 asks of it.

The equivalence and resume tests use tests/ddp_worker.py, a deterministic model (no noise, no
BatchNorm) trained through the real loop, so runs with 1 and 2 ranks can be compared weight for
weight; the rest drive `genforge train` under torchrun as a user would."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import genforge
from genforge.data import ImageSet
from genforge.train.batches import batches
from genforge.train.checkpoint import read_safetensors

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "ddp_worker.py"
pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")


def _env(**extra) -> dict:
    # one thread per rank (torchrun's own default), so two ranks fit two cores
    return {**os.environ, "OMP_NUM_THREADS": "1", **extra}


def torchrun(*args, nproc: int = 2, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                           *map(str, args)], env=_env(), capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def genforge_cli(*args, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genforge", *map(str, args)], env=_env(), capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def worker(out: Path, steps: int, batch: int, nproc: int, resume: bool = False) -> None:
    extra = ["resume"] if resume else []
    if nproc == 1:
        done = subprocess.run([sys.executable, WORKER, out, str(steps), str(batch), *extra], env=_env(),
                              capture_output=True, text=True, timeout=120)
    else:
        done = torchrun(WORKER, out, steps, batch, *extra, nproc=nproc, timeout=120)
    assert done.returncode == 0, failure(done)


def failure(done: subprocess.CompletedProcess) -> str:
    """What a failed job printed: the ranks' own lines come first, torchrun's summary last."""
    err = done.stderr
    return err if len(err) <= 4000 else f"{err[:2000]}\n[...]\n{err[-2000:]}"


def rows(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# --- the data each rank sees ------------------------------------------------------------------
def test_the_ranks_together_draw_the_global_batch_of_one_process():
    data = ImageSet(torch.arange(40, dtype=torch.uint8).view(40, 1, 1, 1).expand(40, 1, 2, 2).contiguous(),
                    torch.arange(40))
    one = batches(data, 8, seed=5, start_step=3)
    ranks = [batches(data, 4, seed=5, start_step=3, rank=r, world_size=2) for r in range(2)]
    for _ in range(12):  # across epoch ends (5 global batches per epoch)
        _, y = next(one)
        parts = [next(r)[1] for r in ranks]
        assert torch.equal(torch.cat(parts), y)
        assert not set(parts[0].tolist()) & set(parts[1].tolist())  # no image on both ranks


# --- the same steps with 1 and 2 ranks --------------------------------------------------------
@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    """20 steps of one process with batch 16: what the 2-rank runs must reproduce."""
    run = tmp_path_factory.mktemp("ddp") / "straight"
    worker(run, steps=20, batch=16, nproc=1)
    return run


def test_two_ranks_with_half_batches_take_the_steps_of_one_process_with_the_whole(tmp_path, straight):
    worker(tmp_path / "two", steps=20, batch=8, nproc=2)
    a, b = load_file(straight / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=1e-5, rtol=1e-4)
    losses_one, losses_two = [r["loss"] for r in rows(straight)], [r["loss"] for r in rows(tmp_path / "two")]
    assert losses_one[-1] < losses_one[0]
    assert losses_two == pytest.approx(losses_one, rel=1e-5)  # logged: the mean over both ranks
    cfg = json.loads((tmp_path / "two" / "config.json").read_text())["train"]
    assert (cfg["world_size"], cfg["batch_size"], cfg["global_batch_size"]) == (2, 8, 16)


@pytest.mark.parametrize("first, then", [(2, 1), (1, 2)])
def test_a_run_resumes_with_another_number_of_ranks_where_it_stopped(tmp_path, straight, first, then):
    run = tmp_path / "resumed"
    worker(run, steps=10, batch=16 // first, nproc=first)
    assert json.loads(read_safetensors(run / "checkpoint.safetensors")[1]["state"])["step"] == 10
    worker(run, steps=20, batch=16 // then, nproc=then, resume=True)
    assert [r["step"] for r in rows(run)] == [5, 10, 15, 20]  # continued from step 10, once
    expected, resumed = (read_safetensors(p / "checkpoint.safetensors")[0] for p in (straight, run))
    # weights and every optimiser moment as if the run had never stopped
    for k in expected:
        if k.startswith(("model.", "optim.")):
            torch.testing.assert_close(resumed[k], expected[k], atol=1e-5, rtol=1e-4, msg=k)


# --- genforge train under torchrun ------------------------------------------------------------
def test_torchrun_trains_a_vae_into_one_run_directory_and_a_single_process_resumes_it(tmp_path, mnist_train):
    run = tmp_path / "vae"
    done = torchrun("-m", "genforge", "train", "--model", "vae", "--dataset", "mnist", "--steps", 10,
                    "--log-every", 5, "--batch-size", 16, "--out", run, "--no-progress", "--prior", "none")
    assert done.returncode == 0, failure(done)
    assert done.stdout.count("trained vae") == 1  # rank 0 speaks for the job
    cfg = json.loads((run / "config.json").read_text())["train"]
    assert (cfg["world_size"], cfg["batch_size"], cfg["global_batch_size"]) == (2, 16, 32)
    assert [r["step"] for r in rows(run)] == [5, 10]  # one log, written once
    assert rows(run)[-1]["epoch"] == pytest.approx(10 * 32 / 60_000, abs=1e-3)
    assert "| ranks (torchrun) | 2: a global batch of 32 |" in (run / "report.md").read_text()
    assert list((run / "samples").glob("*.png"))
    # one process goes on with the same global batch
    done = genforge_cli("train", "--resume", "--out", run, "--steps", 20, "--log-every", 5, "--no-progress",
                        "--prior", "none")
    assert done.returncode == 0, failure(done)
    cfg = json.loads((run / "config.json").read_text())["train"]
    assert (cfg["world_size"], cfg["batch_size"], cfg["global_batch_size"]) == (1, 32, 32)
    assert [r["step"] for r in rows(run)] == [5, 10, 15, 20]
    assert genforge.load(run).sample(4, seed=0).shape == (4, 1, 28, 28)


def test_torchrun_trains_a_gan_and_resumes_it_on_two_ranks(tmp_path, mnist_train):
    run = tmp_path / "cgan"
    args = ["-m", "genforge", "train", "--model", "cgan", "--dataset", "mnist", "--log-every", 5,
            "--batch-size", 16, "--out", run, "--no-progress"]
    done = torchrun(*args, "--steps", 10, "--eval-every", 10, "--eval-n", 200)
    assert done.returncode == 0, failure(done)
    # each rank sampled and embedded 100, rank 0 gathered the features and wrote the metrics once
    evals = [json.loads(line) for line in (run / "evals.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [10]
    assert all(e["n_fake"] == 200 and 0 < e["fid"] < float("inf") for e in evals)
    first = read_safetensors(run / "checkpoint.safetensors")[0]
    done = torchrun(*args, "--steps", 15, "--resume")
    assert done.returncode == 0, failure(done)
    assert [r["step"] for r in rows(run)] == [5, 10, 15]
    assert {"loss_d", "loss_g"} <= set(rows(run)[-1])
    later = read_safetensors(run / "checkpoint.safetensors")[0]
    # both networks and the generator's average moved on from the checkpoint it resumed
    for prefix in ("model.generator.", "model.discriminator.", "model.generator_ema."):
        keys = [k for k in first if k.startswith(prefix) and first[k].is_floating_point()]
        assert keys and any(not torch.equal(first[k], later[k]) for k in keys), prefix


# --- a rank that dies or hangs ----------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("how", ["killed", "hung"])
def test_a_lost_rank_ends_the_job_within_the_timeout_with_one_line(tmp_path, mnist_train, how):
    """torchrun's environment set by hand, so the test sees what the surviving rank itself does."""
    run, port = tmp_path / "run", _free_port()
    ranks = []
    for rank in range(2):
        env = _env(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port))
        ranks.append(subprocess.Popen(
            [sys.executable, "-m", "genforge", "train", "--model", "vae", "--dataset", "mnist", "--steps", "100000",
             "--log-every", "5", "--batch-size", "16", "--out", str(run), "--no-progress", "--prior", "none",
             "--dist-timeout", "5"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        deadline = time.monotonic() + 120
        while not ((run / "metrics.jsonl").exists() and len(rows(run)) >= 2):
            assert time.monotonic() < deadline and ranks[0].poll() is None, "the job never got going"
            time.sleep(0.2)
        os.kill(ranks[1].pid, signal.SIGKILL if how == "killed" else signal.SIGSTOP)
        lost_at = time.monotonic()
        _, err = ranks[0].communicate(timeout=60)
        took = time.monotonic() - lost_at
    finally:
        for p in ranks:
            p.kill()
            p.wait()
    assert ranks[0].returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genforge: error: rank 0 of 2 lost contact with another rank"), err
    assert "last checkpoint in" in lines[0] and "Traceback" not in err
    assert took < 5 + 15  # the timeout, and a little for the step in flight
    step = json.loads(read_safetensors(run / "checkpoint.safetensors")[1]["state"])["step"]
    assert step >= 0 and genforge.load(run).sample(2, seed=0).shape == (2, 1, 28, 28)


# --- what is refused, and how -----------------------------------------------------------------
def test_sync_bn_on_a_cpu_is_refused_in_one_line(tmp_path):
    done = genforge_cli("train", "--model", "dcgan", "--dataset", "mnist", "--steps", 1, "--sync-bn",
                        "--out", tmp_path / "r")
    assert done.returncode == 2
    assert done.stderr.strip() == "genforge: error: --sync-bn needs --device cuda: torch's SyncBatchNorm runs on GPUs only"


def test_a_half_set_torchrun_environment_is_refused_in_one_line(tmp_path):
    env = _env(WORLD_SIZE="2")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    done = subprocess.run([sys.executable, "-m", "genforge", "train", "--model", "vae", "--dataset", "mnist",
                           "--steps", "1", "--out", str(tmp_path / "r")], env=env, capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr.strip().startswith("genforge: error: WORLD_SIZE is set but RANK is not: launch distributed "
                                          "training with torchrun")
    assert not (tmp_path / "r").exists()


def test_a_global_batch_that_does_not_split_over_the_ranks_is_refused_on_resume():
    from genforge.api import _resumed_batch
    from genforge.errors import RunError
    assert _resumed_batch({"batch_size": 8, "global_batch_size": 16}, 2, "r") == 8
    assert _resumed_batch({"batch_size": 32}, 4, "r") == 8  # a run from before distributed training
    with pytest.raises(RunError, match="global batch of 9, which does not split evenly over 2 ranks"):
        _resumed_batch({"batch_size": 9, "global_batch_size": 9}, 2, "runs/r")
