"""Training throughput on MNIST: the genforge trainer against the plain tutorial loops.

    python bench/throughput.py [--seconds 60] [--models vae,dcgan,ref-vae,ref-dcgan] [--bf16]
                               [--out bench/out] [--write-md BENCHMARKS.md] [--threads N] [--device cpu]

Every case trains for the same wall-clock budget in its own subprocess, so each peak RSS
is that case's alone and no case inherits another's warm allocator or thread pool.
Cases:
  genforge:<model>   genforge.train.train on the model, at the model's default batch size, in float32
  plain:ref-vae      the PyTorch-examples VAE loop (DataLoader, loss.item() every step)
  plain:ref-dcgan    the TensorFlow DCGAN tutorial loop, in PyTorch (DataLoader, .item() every step)
  genforge-bf16:<model>  with --bf16: the trainer under bfloat16 autocast (`--precision bf16`)
plain:* run when their ref-* model is selected; the genforge/plain ratio of img/s for
ref-vae and ref-dcgan is the trainer's speed-up on the same networks and the same maths.
--models takes any genforge model (the default is the four above). On a GPU (--device cuda)
the results go to their own Markdown block, beside the CPU's, with the card's name and the
peak GPU memory of each case.

Writes <out>/<case>.json per case, <out>/throughput.json (all of them) and
<out>/throughput_losses.png; with --write-md, a section of a Markdown file.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import machine, write_block

MODELS = ["vae", "dcgan", "ref-vae", "ref-dcgan"]
PLAIN = {"ref-vae": "plain:ref-vae", "ref-dcgan": "plain:ref-dcgan"}  # model -> its plain loop
LOG_EVERY = 25  # the trainer's default: measure the host syncs users actually get


def markers(device: str) -> tuple[str, str]:
    """The CPU table keeps its block; each other device type gets its own."""
    kind = torch.device(device).type
    tag = "throughput" if kind == "cpu" else f"throughput-{kind}"
    return f"<!-- {tag}:start -->", f"<!-- {tag}:end -->"


def warmup_seconds(budget_s: float) -> float:
    # The first steps pay for allocator growth and lazy initialisation. 3 s covers that on a
    # CPU; 10% of the budget keeps a few-second smoke run measurable at all.
    return min(3.0, 0.1 * budget_s)


def peak_rss_mb() -> float:
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1 / 1024 ** 2 if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def load_mnist():
    # Every case reads MNIST through the same loader, so the load's share of peak RSS is equal.
    from genforge.data import load_dataset
    return load_dataset("mnist", "train")


# ----------------------------------------------------------------------------------------
# Case 1: the genforge trainer, read back from the metrics.jsonl it writes.

def bench_genforge(model_name: str, seconds: float, device: str, precision: str = "fp32") -> dict:
    from genforge.models import build_model
    from genforge.train import TrainConfig, train

    data = load_mnist()
    torch.manual_seed(0)
    model = build_model(model_name, image_shape=data.shape)
    # No sample grids or checkpoints inside the budget: they are I/O, not training.
    config = TrainConfig(minutes=seconds / 60, log_every=LOG_EVERY, sample_every=10 ** 9,
                         checkpoint_minutes=10 ** 6, device=device, precision=precision)
    with tempfile.TemporaryDirectory() as tmp:
        summary = train(model, data, Path(tmp) / "run", config, progress=False)
        rows = [json.loads(line) for line in open(Path(tmp) / "run" / "metrics.jsonl")]
    batch = summary["batch_size"]
    loss_keys = [k for k in rows[0] if k not in ("step", "time_s", "epoch", "img_per_s")]
    return {
        "batch": batch,
        "parameters": model.num_parameters(),
        "steps": summary["step"],
        "images": summary["images_seen"],
        "img_per_s": rate_from_rows(rows, batch, warmup_seconds(seconds)),
        "final_losses": summary["losses"],
        "loss_curve": curves([(r["time_s"], {k: r[k] for k in loss_keys}) for r in rows]),
    }


def rate_from_rows(rows: list[dict], batch: int, warmup_s: float) -> float:
    """img/s between the first log row after the warm-up and the last row.

    From step counts and the rows' time_s (wall clock since training began) rather than
    the rows' own img_per_s, which leave out the logging between windows: this way the
    trainer pays for everything it does, as the plain loops do.
    """
    after = [r for r in rows if r["time_s"] >= warmup_s]
    first = after[0] if len(after) >= 2 else {"step": 0, "time_s": 0.0}  # too short to skip warm-up
    last = rows[-1]
    return (last["step"] - first["step"]) * batch / max(last["time_s"] - first["time_s"], 1e-9)


def curves(points: list[tuple[float, dict]]) -> dict:
    """{loss name: [(time_s, value), ...]}: the total loss of a VAE, both losses of a GAN
    (not the other logged values, such as a discriminator's mean outputs)."""
    logged = list(points[0][1])
    keys = ["loss"] if "loss" in logged else [k for k in logged if k.startswith("loss")] or logged
    return {k: [(round(t, 3), d[k]) for t, d in points] for k in keys}


# ----------------------------------------------------------------------------------------
# Case 2: the PyTorch-examples MLP VAE loop, written the way the example writes it.

def bench_plain_vae(seconds: float, device: str) -> dict:
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, TensorDataset

    from genforge.models.reference import RefVAE

    data = load_mnist()
    dataset = TensorDataset(data.images.float() / 255, data.labels)  # what ToTensor() gives, decoded once
    loader = DataLoader(dataset, batch_size=128, shuffle=True)
    torch.manual_seed(0)
    model = RefVAE(RefVAE.Config()).to(device)  # the example's 784-400-20 network
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def loss_function(recon_x, x, mu, logvar):
        bce = F.binary_cross_entropy(recon_x.view(-1, 784), x.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return bce + kld

    def step(batch):
        x, _ = batch
        x = x.to(device)
        optimizer.zero_grad()
        mu, logvar = model.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        loss = loss_function(model.decode(z), x, mu, logvar)
        loss.backward()
        optimizer.step()
        return len(x), {"loss": loss.item() / len(x)}  # the example's per-step sync

    model.train()
    result = timed_loop(loader, step, seconds)
    return {"batch": 128, "parameters": sum(p.numel() for p in model.parameters()), **result}


# ----------------------------------------------------------------------------------------
# Case 3: the TensorFlow DCGAN tutorial loop, in PyTorch with the tutorial's networks.

def bench_plain_dcgan(seconds: float, device: str) -> dict:
    from torch.utils.data import DataLoader, TensorDataset

    from genforge.models.reference import (TFTutorialDiscriminator, TFTutorialGenerator, glorot_init,
                                           tutorial_step)

    noise_dim = 100
    data = load_mnist()
    dataset = TensorDataset((data.images.float() - 127.5) / 127.5)  # the tutorial's [-1, 1]
    loader = DataLoader(dataset, batch_size=256, shuffle=True)
    torch.manual_seed(0)
    generator = TFTutorialGenerator(noise_dim, data.shape).to(device)
    discriminator = TFTutorialDiscriminator(data.shape).to(device)
    glorot_init(generator)
    glorot_init(discriminator)
    # Keras Adam: lr 1e-4 as the tutorial sets it, epsilon 1e-7 by default.
    generator_optimizer = torch.optim.Adam(generator.parameters(), lr=1e-4, eps=1e-7)
    discriminator_optimizer = torch.optim.Adam(discriminator.parameters(), lr=1e-4, eps=1e-7)

    def step(batch):
        (images,) = batch
        images = images.to(device)
        noise = torch.randn(len(images), noise_dim, device=device)
        losses = tutorial_step(generator, discriminator, images, noise,
                               generator_optimizer, discriminator_optimizer)
        return len(images), {k: v.item() for k, v in losses.items()}

    generator.train()
    discriminator.train()
    result = timed_loop(loader, step, seconds)
    params = sum(p.numel() for net in (generator, discriminator) for p in net.parameters())
    return {"batch": 256, "parameters": params, **result}


def timed_loop(loader, step, seconds: float) -> dict:
    """Epochs over a DataLoader until the budget is spent: the plain loops' shared outer loop.

    Losses are averaged over LOG_EVERY steps for the curve, as the trainer's rows are.
    """
    warmup_s = warmup_seconds(seconds)
    steps = images = 0
    warm = None  # (seconds, images) when the warm-up ended
    window, curve_points, done = [], [], False
    t0 = time.perf_counter()
    while not done:
        for batch in loader:  # a fresh shuffle each epoch, as `for epoch in ...` does
            n, losses = step(batch)
            steps, images = steps + 1, images + n
            window.append(losses)
            now = time.perf_counter() - t0
            if warm is None and now >= warmup_s:
                warm = (now, images)
            done = now >= seconds
            if len(window) == LOG_EVERY or done:
                curve_points.append((now, {k: sum(w[k] for w in window) / len(window) for k in window[0]}))
                window = []
            if done:
                break
    if warm is None or warm[0] >= now:  # too short to skip warm-up
        warm = (0.0, 0)
    return {
        "steps": steps,
        "images": images,
        "img_per_s": (images - warm[1]) / (now - warm[0]),
        "final_losses": curve_points[-1][1],
        "loss_curve": curves(curve_points),
    }


# ----------------------------------------------------------------------------------------
# The child process: one case, its result as JSON.

def run_child(case: str, seconds: float, device: str, threads: int | None, out_file: Path) -> None:
    if threads:
        torch.set_num_threads(threads)
    kind, model = case.split(":")
    if kind in ("genforge", "genforge-bf16"):
        result = bench_genforge(model, seconds, device, "bf16" if kind == "genforge-bf16" else "fp32")
    elif model == "ref-vae":
        result = bench_plain_vae(seconds, device)
    else:
        result = bench_plain_dcgan(seconds, device)
    # Peak RSS last: it then covers data loading and the whole training run.
    result.update(case=case, seconds=seconds, device=device, threads=torch.get_num_threads(),
                  peak_rss_mb=peak_rss_mb())
    if torch.device(device).type == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2 ** 20
    out_file.write_text(json.dumps(result) + "\n")


# ----------------------------------------------------------------------------------------
# The parent: run each case in a subprocess, then summarise.

def case_list(models: list[str], bf16: bool = False) -> list[str]:
    cases = [f"genforge:{m}" for m in models] + ([f"genforge-bf16:{m}" for m in models] if bf16 else [])
    return cases + [PLAIN[m] for m in models if m in PLAIN]


def run_case(case: str, args) -> dict | None:
    out_file = args.out / f"{case.replace(':', '_')}.json"
    out_file.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", case, "--seconds", str(args.seconds),
           "--device", args.device, "--child-out", str(out_file)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    print(f"--- {case}: {args.seconds:g} s", flush=True)
    proc = subprocess.run(cmd)
    if proc.returncode != 0 or not out_file.exists():
        print(f"    FAILED (exit code {proc.returncode})", flush=True)
        return None
    result = json.loads(out_file.read_text())
    print(f"    {result['img_per_s']:.0f} img/s, {result['steps']} steps, "
          f"peak {result['peak_rss_mb']:.0f} MB", flush=True)
    return result


def ratio_rows(results: dict[str, dict]) -> list[tuple[str, float]]:
    rows = []
    for model, plain in PLAIN.items():
        ours, theirs = results.get(f"genforge:{model}"), results.get(plain)
        if ours and theirs:
            rows.append((f"{model}: genforge trainer / plain loop", ours["img_per_s"] / theirs["img_per_s"]))
    # genforge's default models against the references they replace (different networks:
    # the point is how much more data per second, or less, the better model costs).
    for model, reference in (("vae", "plain:ref-vae"), ("dcgan", "plain:ref-dcgan")):
        ours, theirs = results.get(f"genforge:{model}"), results.get(reference)
        if ours and theirs:
            rows.append((f"{model} / {reference}", ours["img_per_s"] / theirs["img_per_s"]))
    for case, r in results.items():
        kind, model = case.split(":")
        if kind == "genforge-bf16" and f"genforge:{model}" in results:
            rows.append((f"{model}: bf16 autocast / fp32", r["img_per_s"] / results[f"genforge:{model}"]["img_per_s"]))
    return rows


def table(results: dict[str, dict]) -> str:
    gpu = any("peak_gpu_mb" in r for r in results.values())
    lines = ["| case | batch | parameters | img/s | peak MB | " + ("peak GPU MB | " if gpu else "") + "steps |",
             "|---|---:|---:|---:|---:|" + ("---:|" if gpu else "") + "---:|"]
    for case, r in results.items():
        gpu_mb = f"{r.get('peak_gpu_mb', 0):.0f} | " if gpu else ""
        lines.append(f"| {case} | {r['batch']} | {r['parameters']:,} | {r['img_per_s']:.0f} | "
                     f"{r['peak_rss_mb']:.0f} | {gpu_mb}{r['steps']} |")
    for name, ratio in ratio_rows(results):
        lines.append(f"| ratio {name} | | | {ratio:.2f}x | | |" + (" |" if gpu else ""))
    return "\n".join(lines)


def plot_losses(results: dict[str, dict], path: Path, warmup_s: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ncols = min(3, len(results))
    nrows = -(-len(results) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.3 * nrows), squeeze=False)
    for ax in axes.flat[len(results):]:
        ax.set_visible(False)
    for ax, (case, r) in zip(axes.flat, results.items()):
        for name, points in r["loss_curve"].items():
            t, v = zip(*points)
            ax.plot(t, v, marker=".", label=name)  # markers: a short run may log one point
        ax.axvspan(0, warmup_s, color="0.9", label="warm-up")  # not counted in img/s
        ax.set_title(f"{case}\n{r['img_per_s']:.0f} img/s", fontsize=9)
        ax.set_xlabel("wall-clock s")
        ax.set_ylabel("loss")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown_block(results: dict[str, dict], args, load_before: tuple[float, float, float]) -> str:
    threads = sorted({r["threads"] for r in results.values()})
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    kind = torch.device(args.device).type
    card = f" ({torch.cuda.get_device_name(args.device)})" if kind == "cuda" else ""
    start, end = markers(args.device)
    return "\n".join([
        start,
        "## Training throughput (MNIST train" + (f", {kind.upper()}" if kind != "cpu" else "") + ")",
        "",
        f"- date: {date}",
        f"- machine: {machine()} (children: {'/'.join(map(str, threads))}), device {args.device}{card}",
        f"- load average before the run: {' '.join(f'{x:.2f}' for x in load_before)}",
        f"- command: `{shlex.join(sys.orig_argv)}`",
        f"- each case trains {args.seconds:g} s in its own process; img/s leaves out the first "
        f"{warmup_seconds(args.seconds):g} s; peak MB is the process's max RSS",
        "",
        table(results),
        end,
    ])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60, help="training budget per case")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated; ref-* also run their plain loop")
    p.add_argument("--out", type=Path, default=Path("bench/out"))
    p.add_argument("--write-md", type=Path, help="Markdown file to write the results section into")
    p.add_argument("--threads", type=int, help="torch.set_num_threads in each case (default: torch's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--bf16", action="store_true", help="also train each genforge model under bfloat16 autocast")
    p.add_argument("--child", help=argparse.SUPPRESS)  # internal: run this one case
    p.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.child:
        run_child(args.child, args.seconds, args.device, args.threads, args.child_out)
        return

    from genforge.models import MODELS as ALL_MODELS

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(models) - set(ALL_MODELS))
    if unknown:
        p.error(f"unknown model(s) {unknown}; choose from {sorted(ALL_MODELS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()  # other work on the machine skews the numbers: say how much

    cases, results = case_list(models, args.bf16), {}
    for case in cases:
        result = run_case(case, args)
        if result is not None:
            results[case] = result
    if not results:
        sys.exit("no case finished")

    print()
    print(table(results))
    (args.out / "throughput.json").write_text(json.dumps(results, indent=1) + "\n")
    plot_losses(results, args.out / "throughput_losses.png", warmup_seconds(args.seconds))
    if args.write_md:
        write_block(args.write_md, markdown_block(results, args, load_before), *markers(args.device))
        print(f"\nwrote {args.write_md}")
    print(f"wrote {args.out}/throughput.json and throughput_losses.png")
    if len(results) < len(cases):
        sys.exit(f"failed: {', '.join(c for c in cases if c not in results)}")


if __name__ == "__main__":
    main()
