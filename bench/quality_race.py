"""Sample quality against wall-clock training time: genforge's models against the references.

    python bench/quality_race.py [--dataset mnist] [--marks 5,10,15]
                                 [--models vae,dcgan,ref-vae,ref-dcgan] [--out bench/out/race]
                                 [--figure docs/images/race-mnist.png] [--write-md BENCHMARKS.md]

Each model trains with the same budget on the same machine; at every mark (minutes of
training) the run is stopped, 64 images are drawn from fixed noise, and training resumes
from its checkpoint to the next mark - `--resume` is part of what is measured. Until the
evaluation metrics land (FID and friends), the judgement is the picture: one row per
model, one column per mark.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import genforge  # noqa: E402
from genforge.metrics.evaluate import evaluate_images  # noqa: E402
from genforge.metrics.feature_net import shipped_feature_nets  # noqa: E402
from genforge.report import make_grid  # noqa: E402
from genforge.train import RunDir  # noqa: E402

from common import command, machine, write_block  # noqa: E402

EVAL_N = 10_000
METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "classes_covered")
MD_START, MD_END = "<!-- race:{}:start -->", "<!-- race:{}:end -->"


def race(model: str, dataset: str, marks: list[float], out: Path, seed: int) -> list[dict]:
    """Trains one model up to each mark in turn; returns one row per mark."""
    run = out / model
    rows = []
    for i, minutes in enumerate(marks):
        if i == 0 and run.exists():
            raise SystemExit(f"{run} exists; remove it or pick another --out")
        t = time.time()
        trained = genforge.train(model, dataset, run, minutes=minutes, seed=seed, resume=i > 0,
                                 progress=False, report=False)
        grid = make_grid(trained.sample(64, seed=1234), nrow=8)
        last = RunDir(run).read_metrics()[-1]
        row = {"model": model, "minutes": minutes, "step": last["step"], "epoch": last["epoch"],
               "parameters": trained.module.num_parameters(), "grid": grid,
               "losses": {k: v for k, v in last.items() if k.startswith("loss")}}
        if dataset in shipped_feature_nets():
            metrics = evaluate_images(trained.sample(EVAL_N, seed=0), dataset)
            row["metrics"] = {k: metrics[k] for k in METRICS}
            row["floor_fid"] = metrics["floor"]["fid"]
        rows.append(row)
        fid = f"  FID {row['metrics']['fid']:.2f}" if "metrics" in row else ""
        print(f"{model:10s} {minutes:5.1f} min  step {last['step']:6d}  epoch {last['epoch']:6.2f}{fid}  "
              f"({time.time() - t:.0f} s wall)", flush=True)
    return rows


def figure(results: dict[str, list[dict]], path: Path, title: str) -> None:
    models = list(results)
    marks = [r["minutes"] for r in results[models[0]]]
    fig, axes = plt.subplots(len(models), len(marks), figsize=(2.6 * len(marks), 2.75 * len(models)),
                             squeeze=False)
    for i, model in enumerate(models):
        for j, row in enumerate(results[model]):
            ax = axes[i][j]
            grid = row["grid"]
            ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"{row['minutes']:g} min", fontsize=11)
            if j == 0:
                ax.set_ylabel(model, fontsize=11)
            ax.set_xlabel(f"{row['epoch']:.1f} epochs", fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(results: dict[str, list[dict]], dataset: str, figure_path: Path, md_dir: Path) -> str:
    start, end = MD_START.format(dataset), MD_END.format(dataset)
    lines = [start, f"## Sample quality against training time ({dataset})", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine()}, cpu",
             f"- command: `{command()}`",
             "- each model trains alone on the machine; grids are 64 samples from the same fixed seed", "",
             f"![samples at each mark]({os.path.relpath(figure_path, md_dir)})", "",
             "| model | parameters | minutes | steps | epochs | " + " | ".join(METRICS) + " |",
             "|---|---:|---:|---:|---:|" + "---:|" * len(METRICS)]
    for rows in results.values():
        for r in rows:
            m = r.get("metrics", {})
            cells = [f"{m[k]:.3g}" if k in m else "-" for k in METRICS]
            lines.append(f"| {r['model']} | {r['parameters']:,} | {r['minutes']:g} | {r['step']} | "
                         f"{r['epoch']:.2f} | " + " | ".join(cells) + " |")
    floors = {r["floor_fid"] for rows in results.values() for r in rows if "floor_fid" in r}
    if floors:
        lines += ["", f"Metrics: {EVAL_N} samples against the {dataset} test split with genforge's shipped "
                  f"feature network; the real-vs-real FID floor (10k train vs test) is {min(floors):.3g}."]
    return "\n".join(lines + [end])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--marks", default="5,10,15", help="minutes of training at which to sample")
    p.add_argument("--models", default="vae,dcgan,ref-vae,ref-dcgan")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("bench/out/race"))
    p.add_argument("--figure", type=Path, help="default: <out>/race-<dataset>.png")
    p.add_argument("--write-md", type=Path)
    args = p.parse_args()
    marks = [float(m) for m in args.marks.split(",")]
    out = args.out / args.dataset
    results = {m: race(m, args.dataset, marks, out, args.seed) for m in args.models.split(",")}
    fig_path = args.figure or out / f"race-{args.dataset}.png"
    figure(results, fig_path, f"{args.dataset}: samples after each training budget (2 CPU cores)")
    (out / "race.json").write_text(json.dumps(
        {m: [{k: v for k, v in r.items() if k != "grid"} for r in rows] for m, rows in results.items()}, indent=1))
    print(f"figure: {fig_path}")
    if args.write_md:
        block = markdown(results, args.dataset, fig_path, args.write_md.resolve().parent)
        write_block(args.write_md, block, MD_START.format(args.dataset), MD_END.format(args.dataset))


if __name__ == "__main__":
    main()
