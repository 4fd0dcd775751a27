"""The run report (report.md): samples drawn through the trained model as `genforge sample`
draws them (per class for a conditional model), the last `genforge eval` beside the
real-vs-real floor, edits added with `genforge edit --report`, loss curves and throughput.

It is written at the end of `genforge train` (after an autoencoder's latent prior is fitted)
and again whenever what it shows changes: `genforge prior` refits the prior, `genforge eval`
stores an evaluation, `genforge edit --report` adds a picture. It only uses the model through
its public interface (`genforge.load`, `Model.sample`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI
import matplotlib.pyplot as plt  # noqa: E402

from ..train.run_dir import RunDir  # noqa: E402
from .grid import save_png  # noqa: E402
from .records import is_current, read_edits, read_eval  # noqa: E402
from .samples import N_SAMPLES, PER_CLASS, SEED, class_grid, prior_in_words, sample_grid  # noqa: E402

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
    """Writes RUN/report.md and its pictures from what the run directory holds now."""
    from ..api import load
    run = RunDir(run_dir)
    cfg = run.read_config()
    rows = run.read_metrics()
    data = cfg.get("data", {})
    lines = [f"# genforge run: `{cfg['model']}` on `{data.get('dataset', '?')}`", ""]
    if data.get("labels", "class") != "class":  # data/labelling.py
        lines += [f"Conditioned on the {data['labels']} labels: {', '.join(data.get('classes') or [])}.", ""]
    lines += _samples_section(load(run.path), run, data.get("classes"), rows)
    lines += _eval_section(run)
    lines += _edits_section(run)
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
                  *([f"| ranks (torchrun) | {cfg['train']['world_size']}: a global batch of "
                     f"{cfg['train']['global_batch_size']} |"] if cfg["train"].get("world_size", 1) > 1 else []),
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


def refresh_report(run_dir: str | Path) -> Path | None:
    """Rewrites the report of a run that has one (a run trained with `report=False` keeps none)."""
    run = RunDir(run_dir)
    return write_report(run.path) if run.report.exists() else None


def _samples_section(model, run: RunDir, class_names: list[str] | None, rows: list[dict]) -> list[str]:
    """The model's samples as `genforge sample` draws them; for an autoencoder with a fitted
    prior also those from N(0, I) beside them, since that is what the training grids showed."""
    conditional = model.module.is_conditional
    fitted = model.prior is not None
    steps = rows[-1]["step"] if rows else 0
    trained = f"After {steps} training steps ({rows[-1]['time_s'] / 60:.1f} min)" if rows else "After training"

    def picture(prior: str, path: Path) -> str:
        grid = class_grid(model, class_names, prior) if conditional else sample_grid(model, prior)
        save_png(grid, path)
        return path.name

    main = picture("auto", run.path / "samples.png")
    normal_png = run.path / "samples_normal.png"
    normal_png.unlink(missing_ok=True)
    if conditional:
        rows_text = ", ".join(class_names) if class_names else "class 0, 1, ..."
        how = (f"One row per class (top to bottom: {rows_text}); row k is "
               f"`genforge sample RUN --n {PER_CLASS} --label k --seed {SEED}`.")
    else:
        how = f"{N_SAMPLES} samples: `genforge sample RUN --n {N_SAMPLES} --grid --seed {SEED}` writes this grid."
    lines = ["## Samples", "", f"{trained}. Latent codes z drawn from {prior_in_words(model)}: "
             "what `genforge sample` and `genforge eval` use. " + how, ""]
    if not fitted:
        return lines + [f"![samples after {steps} steps]({main})", ""]
    normal = picture("none", normal_png)
    return lines + [
        f"| from the fitted `{model.prior_kind}` prior: what `genforge sample` gives | "
        "from N(0, I): what training's sample grids (`samples/`) saw |", "|---|---|",
        f"| ![samples after {steps} steps from the {model.prior_kind} prior]({main}) | "
        f"![samples from N(0, I)]({normal}) |", "",
        "An autoencoder's codes of real images do not fill N(0, I), so codes drawn from it can decode to "
        "blur or noise while those from the prior fitted to the real codes decode to clean images: judge the "
        f"model by the left picture. `genforge sample RUN --prior none` draws the right one; "
        "`genforge prior RUN --kind flow` fits another prior (and rewrites this report).", ""]


# metric -> what it says, in the order `genforge eval` prints them
METRICS = {
    "fid": "Fréchet distance of the features (lower is better)",
    "kid": "kernel inception distance (lower is better)",
    "precision": "share of samples that look like real images (higher is better)",
    "recall": "share of real images' variety the samples cover (higher is better)",
    "density": "how densely samples sit among real images (about 1 for real ones)",
    "coverage": "share of real images with a sample nearby (higher is better)",
    "classifier_score": "confident and varied classes, like the Inception Score (higher is better)",
    "classes_covered": "classes the classifier reads among the samples",
    "class_kl": "distance of the samples' class mix from the real one (lower is better)",
    "conditional_accuracy": "samples read as the class they were asked for",
    "recon_mse": "reconstruction error of test images (lower is better)",
    "recon_psnr": "reconstruction PSNR, dB (higher is better)",
    "recon_ssim": "reconstruction SSIM (higher is better)",
    "nll": "negative log-likelihood of test images, nats (lower is better)",
    "decoded_fid": "FID of decoded training codes: what a perfect prior would give",
    "nn_ratio": "distance to the nearest training image over a test image's (about 1: no copying)",
    "copies": "share of samples nearer a training image than 99% of test images (about 0.01)",
}


def _eval_section(run: RunDir) -> list[str]:
    """The last `genforge eval RUN` (eval.json): each metric beside what real images score."""
    result = read_eval(run)
    if result is None:
        return []
    floor = result.get("floor", {})
    net = result.get("feature_net", {})
    prior = result.get("prior", "none")
    drawn = f"z from the {prior} prior" if prior not in (None, "none") else "z from N(0, I)"
    if result.get("temperature", 1.0) != 1.0:
        drawn += f", temperature {result['temperature']:g}"
    lines = ["## Evaluation", "",
             f"`genforge eval`: {result.get('n_fake')} samples ({drawn}) against {result.get('n_real')} real test "
             f"images, in the features of the {net.get('dataset', '')} {net.get('network', 'feature network')}. "
             "The real-vs-real floor is what real training images score against the test split with the same "
             "network: the best a model can be expected to reach.", ""]
    if not is_current(result, run):
        lines += ["**Stale**: measured on an earlier state of this run (trained further or a prior refitted "
                  "since); run `genforge eval RUN` again.", ""]
    lines += ["| metric | value | real-vs-real floor | what it says |", "|---|---|---|---|"]
    for key, meaning in METRICS.items():
        if key in result:
            lines.append(f"| {key} | {_fmt(result[key])} | {_fmt(floor[key]) if key in floor else '-'} | {meaning} |")
    return lines + [""]


def _edits_section(run: RunDir) -> list[str]:
    """Pictures added with `genforge edit --report`, each with its caption."""
    cards = read_edits(run)
    if not cards:
        return []
    lines = ["## Edits", ""]
    for card in cards:
        lines += [f"### {card['title']}", "", f"![{card['title']}](edits/{card['picture']})", ""]
        if card.get("caption"):
            lines += [card["caption"], ""]
        if not is_current(card, run):
            lines += ["**Stale**: made with an earlier state of this run; run the edit again.", ""]
    return lines


def _fmt(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if math.isfinite(value) else str(value)



def _read_events(run: RunDir) -> list[dict]:
    if not run.events.exists():
        return []
    return [json.loads(line) for line in run.events.read_text().splitlines() if line.strip()]
