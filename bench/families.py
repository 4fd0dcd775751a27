"""Every model family against the two reference models, with the same training budget.

    python bench/families.py [--dataset mnist] [--image-size N] [--minutes 15] [--seeds 0,1,2] [--parallel 2] [--threads T] [--nice N]
        [--models beta-vae,cvae,cvae-gan,wgan-gp,sngan,cgan,vae,dcgan,ref-vae,ref-dcgan] [--set MODEL:FIELD=VALUE ...]
        [--out bench/out/families] [--figure docs/images/families-mnist.png] [--write-md BENCHMARKS.md] [--block NAME]

Each (model, seed) trains through the CLI in its own process for `--minutes` of wall-clock
time. `--parallel P` runs P trainings at once with 2/P torch threads each, so a model gets
fewer cores than when alone (a handicap for every model alike, stated in the output);
`--threads T` sets the threads of each training instead (`--parallel 1 --threads 1` gives every
run the budget of `--parallel 2` while leaving a core to other work).
Evaluation starts only when all training is done, so it never steals training time:
10k samples against the test split with the shipped feature network (the evaluation
issue's metrics); autoencoders are judged with the standard normal and with each fitted
latent prior; conditional models also by how often the classifier reads the requested class.
On colour data (emoji) the reference is `ref-dcgan-torch`, the PyTorch examples' DCGAN, and the
targets are the colour issue's: the best GAN's FID at most a third of the reference's, precision and
recall of the best model at least 0.6, every category covered, conditional accuracy at least 80%.
`--image-size 32` trains and measures at 32x32 (emoji's own size is 64); the runs go to
<out>/<dataset>-<size>. `--nice -5` (root) runs the trainings ahead of other work on a shared
machine, so a wall-clock budget buys about the compute it would on an idle one.
`--set cvae:beta=0.1` trains a model with a setting other than its default; the table names
every setting of a run that differs from its model's defaults.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import genforge  # noqa: E402
from genforge.api import fit_prior  # noqa: E402
from genforge.metrics.evaluate import evaluate_images  # noqa: E402
from genforge.report import make_grid  # noqa: E402
from genforge.train import RunDir  # noqa: E402

from common import command, machine, model_label as label, write_block  # noqa: E402

EVAL_N = 10_000
EVAL_CACHE = "families-eval.json"
METRICS = ("fid", "kid", "precision", "recall", "density", "coverage", "classes_covered")
REFERENCES = ("ref-vae", "ref-dcgan")
COLOUR_REFERENCES = ("ref-dcgan-torch",)
COND_TARGET = {"mnist": 0.95, "fashion-mnist": 0.85, "emoji": 0.80}
COLOUR = ("emoji", "cifar10", "cifar100", "celeba64")


def references(dataset: str) -> tuple[str, ...]:
    return COLOUR_REFERENCES if dataset in COLOUR else REFERENCES
MD_START, MD_END = "<!-- families:{}:start -->", "<!-- families:{}:end -->"


def train_all(jobs: list[tuple[str, int]], dataset: str, minutes: float, out: Path, parallel: int,
              prior: str, settings: dict[str, list[str]], image_size: int | None = None, nice: int = 0,
              threads: int | None = None) -> None:
    """Trains each (model, seed) into out/MODEL-sSEED, `parallel` at a time."""
    commands = []
    for model, seed in jobs:
        cmd = train_args(model, dataset, minutes, seed, settings.get(model, []))
        if image_size:
            cmd += ["--image-size", str(image_size)]
        if genforge.models.model_class(model).is_autoencoder:
            cmd += ["--prior", prior]
        commands.append((out / f"{model}-s{seed}", cmd))
    run_trainings(commands, parallel, nice, threads)


def train_args(model: str, dataset: str, minutes: float, seed: int, overrides: list[str]) -> list[str]:
    """`genforge train` arguments; each override is FIELD=VALUE (`batch_size` becomes --batch-size)."""
    args = ["train", "--model", model, "--dataset", dataset, "--minutes", str(minutes), "--seed", str(seed)]
    for pair in overrides:
        field, _, value = pair.partition("=")
        args += ["--batch-size", value] if field == "batch_size" else ["--set", pair]
    return args


def run_trainings(jobs: list[tuple[Path, list[str]]], parallel: int, nice: int = 0,
                  threads: int | None = None) -> None:
    """Runs `genforge ARGS --out RUN` for each (RUN, ARGS), `parallel` processes at a time with
    an equal share of the cores each (or `threads` each), logging to RUN.log; finished runs are reused."""
    threads = threads or threads_per_run(parallel)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < parallel:
            run, args = pending.pop(0)
            if trained(run):
                print(f"{run} is trained already; reusing it", flush=True)
                continue
            cmd = [sys.executable, "-m", "genforge", *args, "--out", str(run), "--no-progress"]
            if nice:
                cmd = ["nice", "-n", str(nice), *cmd]
            log = open(f"{run}.log", "w")
            print(f"training {run.name} ({threads} threads)", flush=True)
            running.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), run, log))
        time.sleep(2)
        for job in [j for j in running if j[0].poll() is not None]:
            proc, run, log = job
            log.close()
            running.remove(job)
            if proc.returncode != 0:
                print(f"{run}: training failed (exit {proc.returncode}); see {run}.log", flush=True)


def threads_per_run(parallel: int) -> int:
    return max(1, (os.cpu_count() or 2) // parallel)


def trained(run: Path) -> bool:
    """A finished run: `train` writes the report last (a killed run may have weights already)."""
    return RunDir(run).report.exists()


def evaluate_run(run: Path, dataset: str, priors: list[str]) -> list[dict]:
    """Metrics of one run: with the standard normal, and (autoencoders) with each latent prior.

    The first prior was fitted by `train`; the others are fitted here, after the fact and
    outside the training budget (seconds), and the first is fitted again at the end so the
    run keeps the prior it was trained with. The rows are kept in RUN/families-eval.json and
    reused while the run is unchanged (its report older than the file) and the data set and
    priors are the same: adding a model or a seed does not re-evaluate the others. Delete the
    file to measure a run again."""
    cache, key = run / EVAL_CACHE, {"dataset": dataset, "priors": priors, "samples": EVAL_N}
    if cache.exists() and cache.stat().st_mtime > RunDir(run).report.stat().st_mtime:
        stored = json.loads(cache.read_text())
        if stored["key"] == key:
            print(f"{run.name:16s} measured before: {cache}", flush=True)
            name = label(genforge.load(run))  # against today's defaults, which may have moved
            return [{**row, "model": name} for row in stored["rows"]]
    rows = _measure(run, dataset, priors)
    cache.write_text(json.dumps({"key": key, "rows": rows}, indent=1))
    return rows


def _measure(run: Path, dataset: str, priors: list[str]) -> list[dict]:
    model = genforge.load(run)
    metrics_rows = RunDir(run).read_metrics()
    speeds = sorted(r["img_per_s"] for r in metrics_rows[1:]) or [0]
    base = {"model": label(model), "parameters": model.module.num_parameters(),
            "img_per_s": speeds[len(speeds) // 2], "minutes": metrics_rows[-1]["time_s"] / 60,
            "epochs": metrics_rows[-1]["epoch"]}
    # Balanced over the data set's classes (a model may have room for more: num_classes=10 on emoji's 9).
    n_classes = len(model.run_config["data"].get("classes") or range(model.module.config.num_classes))
    requested = torch.arange(EVAL_N) % n_classes if model.module.is_conditional else None
    samplers = ["none", *priors] if model.module.is_autoencoder else ["none"]
    rows = []
    for sampler in samplers:
        if sampler not in ("none", model.prior_kind):
            model = fit_prior(run, sampler)
        images = model.sample(EVAL_N, seed=0, labels=requested, prior=sampler)
        result = evaluate_images(images, dataset, requested)
        row = {**base, "sampler": sampler, **{k: result[k] for k in METRICS}}
        if requested is not None:
            row["conditional_accuracy"] = result["conditional_accuracy"]
        rows.append(row)
        print(f"{run.name:16s} {sampler:5s} FID {row['fid']:8.2f}  P {row['precision']:.3f}  "
              f"R {row['recall']:.3f}", flush=True)
    if model.module.is_autoencoder and model.prior_kind != priors[0]:
        fit_prior(run, priors[0])
    return rows


def summarise(rows: list[dict]) -> list[dict]:
    """Mean and spread (sample standard deviation) over seeds, per model and sampler."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["sampler"]), []).append(r)
    out = []
    for (model, sampler), rs in groups.items():
        s = {"model": model, "sampler": sampler, "seeds": len(rs), "parameters": rs[0]["parameters"]}
        for k in ("img_per_s", "minutes", "epochs", *METRICS, "conditional_accuracy"):
            values = [r[k] for r in rs if k in r]
            if values:
                s[k] = statistics.mean(values)
                s[k + "_sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out.append(s)
    return out


def best_fid(summary: list[dict], models) -> dict | None:
    candidates = [s for s in summary if s["model"] in models]
    return min(candidates, key=lambda s: s["fid"]) if candidates else None


def targets(summary: list[dict], dataset: str, default_prior: str) -> list[str]:
    """The issue's targets, each with the measured numbers and MET or MISSED."""
    from genforge.models import model_class
    refs = {s["model"]: s["fid"] for s in summary if s["model"] in references(dataset) and s["sampler"] == "none"}
    if set(refs) != set(references(dataset)):
        return ["(the reference models were not in this run: no targets checked)"]
    families = {s["model"] for s in summary} - set(references(dataset))
    # The cvae-gan has a discriminator but samples through its decoder and latent prior: a VAE here.
    gans = {m for m in families if model_class(m.split()[0]).has_discriminator
            and not model_class(m.split()[0]).is_autoencoder}
    vaes = [s for s in summary if s["model"] in families - gans and s["sampler"] != "none"]
    if dataset in COLOUR:
        return colour_targets(summary, dataset, default_prior, refs["ref-dcgan-torch"], gans, families)
    lines = []
    for title, best in (("best GAN", best_fid(summary, gans)), ("best VAE with a learned prior", min(
            vaes, key=lambda s: s["fid"]) if vaes else None)):
        if best is None:
            continue
        checks = [best["precision"] >= 0.75, best["recall"] >= 0.75, best["classes_covered"] >= 10,
                  best["fid"] * 5 <= refs["ref-dcgan"], best["fid"] * 3 <= refs["ref-vae"]]
        lines.append(f"- {title}: `{best['model']}` ({best['sampler']} sampler): precision {best['precision']:.3f}, "
                     f"recall {best['recall']:.3f}, classes {best['classes_covered']:.1f}, FID {best['fid']:.1f} = "
                     f"ref-dcgan / {refs['ref-dcgan'] / best['fid']:.1f} and ref-vae / {refs['ref-vae'] / best['fid']:.1f}"
                     f" (targets: P, R >= 0.75, 10 classes, /5, /3): **{'MET' if all(checks) else 'MISSED'}**")
    for model in sorted(families):
        best = best_fid(summary, {model})
        ok = best["fid"] < min(refs.values())
        lines.append(f"- `{model}` beats both references on FID ({best['fid']:.1f} vs ref-vae {refs['ref-vae']:.1f}, "
                     f"ref-dcgan {refs['ref-dcgan']:.1f}): **{'MET' if ok else 'MISSED'}**")
    return lines + conditional_lines(summary, dataset, default_prior, "class")


def conditional_lines(summary: list[dict], dataset: str, default_prior: str, noun: str) -> list[str]:
    """How often each conditional model's samples are read as the requested class (or category).

    A conditional model is judged with the sampler `genforge sample --label K` uses by default:
    an autoencoder's prior fitted by `train` (the first of --priors), a GAN's own latent."""
    from genforge.models import model_class
    goal = COND_TARGET.get(dataset, 0.85)
    return [f"- `{s['model']}` ({s['sampler']} sampler) requested {noun} read by the classifier: "
            f"{s['conditional_accuracy']:.3f} (target {goal}): "
            f"**{'MET' if s['conditional_accuracy'] >= goal else 'MISSED'}**"
            for s in summary if "conditional_accuracy" in s
            and s["sampler"] == (default_prior if model_class(s["model"].split()[0]).is_autoencoder else "none")]


def colour_targets(summary: list[dict], dataset: str, default_prior: str, ref_fid: float, gans: set,
                   families: set) -> list[str]:
    """The colour issue's targets: best GAN FID <= reference / 3; the best model's precision and
    recall >= 0.6; every category covered; requested category read >= 80%."""
    from genforge.data import dataset_info
    lines = []
    best_gan = best_fid(summary, gans)
    if best_gan is not None:
        ok = best_gan["fid"] * 3 <= ref_fid
        lines.append(f"- best GAN `{best_gan['model']}`: FID {best_gan['fid']:.1f} = ref-dcgan-torch "
                     f"({ref_fid:.1f}) / {ref_fid / best_gan['fid']:.2f} (target: / 3 or better): "
                     f"**{'MET' if ok else 'MISSED'}**")
    best = best_fid(summary, families)
    if best is not None:
        n_classes = len(dataset_info(dataset)["classes"])
        ok = best["precision"] >= 0.6 and best["recall"] >= 0.6
        lines.append(f"- best model `{best['model']}` ({best['sampler']} sampler): precision {best['precision']:.3f}, "
                     f"recall {best['recall']:.3f} (target: both >= 0.6): **{'MET' if ok else 'MISSED'}**")
        ok = best["classes_covered"] >= n_classes
        lines.append(f"- best model covers {best['classes_covered']:.1f} of {n_classes} categories: "
                     f"**{'MET' if ok else 'MISSED'}**")
    return lines + conditional_lines(summary, dataset, default_prior, "category")


def figure(runs: list[Path], path: Path, title: str) -> None:
    """One row of 32 samples per model (seed 0 of each, the prior it was trained with)."""
    fig, axes = plt.subplots(len(runs), 1, figsize=(10, 0.5 + 0.42 * len(runs)), squeeze=False)
    for ax, run in zip(axes[:, 0], runs):
        model = genforge.load(run)
        grid = make_grid(model.sample(32, seed=1234), nrow=32)
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=255,
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(model.name, rotation=0, ha="right", va="center", fontsize=10)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def cell(s: dict, key: str, fmt: str) -> str:
    if key not in s:
        return "-"
    spread = f" ± {s[key + '_sd']:{fmt}}" if s["seeds"] > 1 else ""
    return f"{s[key]:{fmt}}{spread}"


def precision_line(runs: list[Path]) -> str:
    """How the runs trained: float32, or bfloat16 autocast (`--precision`, train/precision.py)."""
    used = sorted({RunDir(run).read_config()["train"].get("precision_used", "fp32") for run in runs})
    return f"- training precision: {', '.join(used)} (`genforge train --precision auto`: bf16 on CPUs with AMX)"


def seeds_line(runs: list[Path], args) -> str:
    """Which seeds each model has, and how the ones this command did not name were trained."""
    seeds: dict[str, list[str]] = {}
    for run in runs:
        model, _, seed = run.name.rpartition("-s")
        seeds.setdefault(model, []).append(seed)
    extra = {m: [x for x in s if x not in args.seeds.split(",")] for m, s in seeds.items()}
    sets = {m: "".join(f" --set {item}" for item in args.set if item.startswith(f"{m}:")) for m in seeds}
    how = "; ".join(f"`--models {m} --seeds {','.join(x)}{sets[m]}`" for m, x in extra.items() if x)
    line = "- seeds: " + ", ".join(f"{m} {'/'.join(s)}" for m, s in seeds.items())
    return line + (f" (the extra seeds trained by the same command with {how})" if how else "")


def markdown(summary: list[dict], dataset: str, args, figure_path: Path, md_dir: Path, runs: list[Path]) -> str:
    block = args.block or name_of(dataset, args.image_size)
    size = f" at {args.image_size}x{args.image_size}" if args.image_size else ""
    lines = [MD_START.format(block), f"## Model families ({dataset}{size}, {args.minutes:g} minutes of training)", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine()}, cpu",
             f"- command: `{command()}`",
             seeds_line(runs, args),
             precision_line(runs),
             f"- {args.parallel} trainings at a time, {args.threads or threads_per_run(args.parallel)} torch "
             f"thread(s) each{f', at niceness {args.nice} (ahead of other work on the machine)' if args.nice else ''}; mean ± standard deviation over the seeds of each row (seeds 0, 1, 2, ... of each "
             "model, every one trained in the run directory)",
             f"- metrics: {EVAL_N} samples against the {dataset} test split, shipped feature network; "
             "sampler `none` is the standard normal, `gmm`/`flow` the latent prior fitted after training", "",
             f"![32 samples of each model]({os.path.relpath(figure_path, md_dir)})", "",
             "| model | sampler | seeds | parameters | img/s | minutes | epochs | FID | KID | precision | recall | density | "
             "coverage | classes | class read |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in sorted(summary, key=lambda s: s["fid"]):
        lines.append(f"| {s['model']} | {s['sampler']} | {s['seeds']} | {s['parameters']:,} | {s['img_per_s']:.0f} | "
                     f"{s['minutes']:.1f} | {s['epochs']:.1f} | {cell(s, 'fid', '.1f')} | {cell(s, 'kid', '.3f')} | "
                     f"{cell(s, 'precision', '.3f')} | {cell(s, 'recall', '.3f')} | {cell(s, 'density', '.3f')} | "
                     f"{cell(s, 'coverage', '.3f')} | {cell(s, 'classes_covered', '.1f')} | "
                     f"{cell(s, 'conditional_accuracy', '.3f')} |")
    lines += ["", "Targets of the model-families issue:", "", *targets(summary, dataset, args.priors.split(",")[0])]
    return "\n".join(lines + [MD_END.format(block)])


def name_of(dataset: str, image_size: int | None) -> str:
    """The data set's name, with the image size where it is not the data set's own."""
    return f"{dataset}-{image_size}" if image_size else dataset


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--image-size", type=int, help="train and measure at this size (default: the data set's own)")
    p.add_argument("--nice", type=int, default=0, help="niceness of the trainings (negative: root only)")
    p.add_argument("--minutes", type=float, default=15)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--models", default="beta-vae,cvae,cvae-gan,wgan-gp,sngan,cgan,vae,dcgan,ref-vae,ref-dcgan")
    p.add_argument("--set", action="append", default=[], metavar="MODEL:FIELD=VALUE",
                   help="a setting other than the model's default, e.g. cvae:beta=0.1; repeat")
    p.add_argument("--parallel", type=int, default=2, help="trainings at once")
    p.add_argument("--threads", type=int, default=None, help="torch threads of each training "
                   "(default: the cores shared among --parallel)")
    p.add_argument("--priors", default="gmm,flow", help="latent priors of autoencoders; the first is fitted "
                   "by `train`, the others when evaluating")
    p.add_argument("--out", type=Path, default=Path("bench/out/families"))
    p.add_argument("--figure", type=Path, help="default: <out>/families-<dataset>.png")
    p.add_argument("--write-md", type=Path)
    p.add_argument("--block", help="name of the Markdown block (default: the data set's), for a table that "
                   "must not replace the data set's own yet")
    args = p.parse_args()
    out = args.out / name_of(args.dataset, args.image_size)
    out.mkdir(parents=True, exist_ok=True)
    models, seeds = args.models.split(","), [int(s) for s in args.seeds.split(",")]
    settings: dict[str, list[str]] = {}
    for item in args.set:
        model, _, pair = item.partition(":")
        settings.setdefault(model, []).append(pair)
    train_all([(m, s) for s in seeds for m in models], args.dataset, args.minutes, out, args.parallel,
              args.priors.split(",")[0], settings, args.image_size, args.nice, args.threads)
    # Every trained seed of the listed models counts, so seeds can be added one invocation at a time.
    runs = sorted((run for m in models for run in out.glob(f"{m}-s*") if run.is_dir() and trained(run)),
                  key=lambda run: run.name)
    rows = [row for run in runs for row in evaluate_run(run, args.dataset, args.priors.split(","))]
    (out / "families.json").write_text(json.dumps(rows, indent=1))
    summary = summarise(rows)
    fig_path = args.figure or out / f"families-{name_of(args.dataset, args.image_size)}.png"
    figure([out / f"{m}-s{seeds[0]}" for m in models if trained(out / f"{m}-s{seeds[0]}")], fig_path,
           f"{name_of(args.dataset, args.image_size)}: 32 samples per model after {args.minutes:g} minutes of training")
    block = markdown(summary, args.dataset, args, fig_path, (args.write_md or out).resolve().parent, runs)
    print(block)
    if args.write_md:
        name = args.block or name_of(args.dataset, args.image_size)
        write_block(args.write_md, block, MD_START.format(name), MD_END.format(name))


if __name__ == "__main__":
    main()
