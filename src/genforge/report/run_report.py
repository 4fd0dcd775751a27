"""The run report: a Markdown page with the last sample grid, loss curves and throughput."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from ..train.run_dir import RunDir  # noqa: E402

NOT_LOSSES = {"step", "time_s", "epoch", "img_per_s"}


def plot_losses(rows: list[dict], path: Path) -> Path | None:
    """One panel per logged quantity against training step; None when nothing was logged."""
    keys = [k for k in rows[0] if k not in NOT_LOSSES] if rows else []
    if not keys:
        return None
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8), squeeze=False)
    steps = [r["step"] for r in rows]
    for ax, key in zip(axes[0], keys):
        ax.plot(steps, [r.get(key, float("nan")) for r in rows], lw=1.2)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_evals(rows: list[dict], path: Path) -> Path | None:
    """FID, and precision/recall, against minutes of training (train --eval-every)."""
    if not rows:
        return None
    minutes = [r["time_s"] / 60 for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7.5, 2.8))
    ax1.plot(minutes, [r["fid"] for r in rows], marker="o", lw=1.2)
    ax1.set_yscale("log")
    ax1.set_title("FID (lower is better)")
    for key in ("precision", "recall", "coverage"):
        ax2.plot(minutes, [r[key] for r in rows], marker="o", lw=1.2, label=key)
    ax2.set_ylim(0, 1)
    ax2.legend(fontsize=8)
    ax2.set_title("precision / recall / coverage")
    for ax in (ax1, ax2):
        ax.set_xlabel("training minutes")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(run_dir: str | Path) -> Path:
    run = RunDir(run_dir)
    cfg = run.read_config()
    rows = run.read_metrics()
    grids = sorted(run.samples.glob("step_*.png"))
    lines = [f"# genforge run: `{cfg['model']}` on `{cfg.get('data', {}).get('dataset', '?')}`", ""]
    if grids:
        shutil.copyfile(grids[-1], run.path / "samples.png")
        lines += ["## Samples", "", f"![samples after {len(rows) and rows[-1]['step']} steps](samples.png)", ""]
    if plot_losses(rows, run.path / "losses.png"):
        lines += ["## Losses", "", "![loss curves](losses.png)", ""]
    evals = run.read_metrics(evals=True)
    if plot_evals(evals, run.path / "evals.png"):
        last = evals[-1]
        lines += ["## Quality during training", "", "![metrics against training time](evals.png)", "",
                  f"Last evaluation (step {last['step']}): FID {last['fid']:.3g}, precision {last['precision']:.3f}, "
                  f"recall {last['recall']:.3f}, classes covered {last['classes_covered']}", ""]
    if rows:
        last = rows[-1]
        speeds = [r["img_per_s"] for r in rows[1:]] or [rows[0]["img_per_s"]]
        lines += ["## Training", "", "| | |", "|---|---|",
                  f"| steps | {last['step']} |",
                  f"| epochs | {last['epoch']} |",
                  f"| training time | {last['time_s'] / 60:.1f} min |",
                  f"| images/second (median) | {sorted(speeds)[len(speeds) // 2]:.0f} |",
                  f"| parameters | {cfg.get('parameters', '?'):,} |",
                  f"| batch size | {cfg['train']['batch_size']} |",
                  f"| precision | {cfg['train'].get('precision_used', 'fp32')} |", ""]
        losses = {k: v for k, v in last.items() if k not in NOT_LOSSES}
        lines += ["Last losses: " + ", ".join(f"{k} {v:.4g}" for k, v in losses.items()), ""]
    events = _read_events(run)
    if events:
        lines += ["## Divergences", "", "| step | what happened | rolled back to | learning rates after |",
                  "|---|---|---|---|"]
        lines += [f"| {e['step']} | {e['reason']} | {e['back_to_step']} | "
                  + ", ".join(f"{k} {v:.3g}" for k, v in e["lr"].items()) + " |" for e in events]
        lines.append("")
    lines += ["## Configuration", "", "```json", json.dumps(cfg, indent=2), "```", ""]
    run.report.write_text("\n".join(lines))
    return run.report



def _read_events(run: RunDir) -> list[dict]:
    if not run.events.exists():
        return []
    return [json.loads(line) for line in run.events.read_text().splitlines() if line.strip()]
