"""Which latent prior suits a trained autoencoder: several priors fitted to the same codes, each
sampled and scored the way the families table scores a model.

    python bench/prior_sweep.py RUN_DIR... --priors gmm gmm:components=30 gmm:covariance=diag,components=40 \
        [--n 10000] [--name NAME] [--write-md BENCHMARKS.md]

A prior is KIND or KIND:OPTION=VALUE,... (the options of `genforge prior --set`). For each run
the codes (posterior means) of its training set are computed once; each prior is fitted to
them in memory (the run's own prior file is not touched), n images are sampled through it (the
classes in turn for a conditional model) and compared with the test split by the shipped
feature network: FID, precision, recall, density, coverage, the rate at which the classifier
reads the requested class, and the seconds the fit took. A prior that hugs the training codes
scores well on all of these by replaying training images, so beside them: how near samples come
to the training images against how near unseen test images come (`metrics.TrainingDistance`:
nn_ratio about 1 and copies about 0.01 for a model that copies nothing).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import genforge
from genforge.api import training_codes, training_set
from genforge.cli.train import parse_overrides
from genforge.metrics.evaluate import evaluate_images, real_split, reconstruct
from genforge.priors import fit_prior

from common import block_header, model_label as label, write_block

MD_START, MD_END = "<!-- prior-sweep:{}:start -->", "<!-- prior-sweep:{}:end -->"
COLUMNS = ("fid", "precision", "recall", "density", "coverage", "nn_ratio", "copies")


def parse_prior(spec: str) -> tuple[str, dict]:
    """"gmm:components=30,covariance=diag" -> ("gmm", {"components": 30, "covariance": "diag"})."""
    kind, _, rest = spec.partition(":")
    return kind, parse_overrides(list(filter(None, rest.split(","))))


def sweep(run: Path, specs: list[str], n: int, replay: bool = False) -> list[dict]:
    model = genforge.load(run)
    dataset = model.run_config["data"]["dataset"]
    codes, labels = training_codes(model, training_set(model))
    num_classes = model.module.config.num_classes if labels is not None else None
    requested = torch.arange(n) % num_classes if labels is not None else None
    rows = []
    if replay:  # no prior: n training images' own codes, decoded (what copying them would score)
        decoded = reconstruct(model, real_split(dataset, "train", n))
        scores = evaluate_images(decoded, dataset, copying=True)
        rows.append(row(run, model, "none: training codes replayed", None, scores))
    for spec in specs:
        kind, options = parse_prior(spec)
        start = time.perf_counter()
        model.prior = fit_prior(kind, codes, labels, num_classes, **options)
        fit_s = time.perf_counter() - start
        images = model.sample(n, seed=0, labels=requested)
        scores = evaluate_images(images, dataset, requested, copying=True)
        rows.append(row(run, model, spec, fit_s, scores))
    return rows


def row(run: Path, model, prior: str, fit_s: float | None, scores: dict) -> dict:
    out = {"run": str(run), "model": label(model), "prior": prior, "fit_s": fit_s,
           **{k: scores[k] for k in COLUMNS}, "class_read": scores.get("conditional_accuracy")}
    fit = "" if fit_s is None else f"fit {fit_s:.0f} s  "
    print(f"{run.name:14s} {prior:40s} {fit}" + "  ".join(f"{k} {out[k]:.3f}" for k in COLUMNS), flush=True)
    return out


def markdown(rows: list[dict], args) -> str:
    lines = block_header(MD_START.format(args.name), f"Prior sweep: {args.name}",
                         f"{args.n} samples per prior against the test split, shipped feature network; "
                         "each prior fitted to the posterior means of the run's training set; nn ratio and copies: "
                         "`metrics.TrainingDistance` (about 1 and 0.01 for samples as new as unseen real images)")
    lines += ["| run | model | prior | fit (s) | FID | precision | recall | density | coverage | nn ratio | copies "
              "| class read |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        read = "-" if r["class_read"] is None else f"{100 * r['class_read']:.1f}%"
        fit = "-" if r["fit_s"] is None else f"{r['fit_s']:.0f}"
        lines.append(f"| {r['run']} | `{r['model']}` | `{r['prior']}` | {fit} | {r['fid']:.1f} | "
                     + " | ".join(f"{r[k]:.3f}" for k in COLUMNS[1:]) + f" | {read} |")
    return "\n".join(lines + [MD_END.format(args.name)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--priors", nargs="+", default=["gmm"], help="KIND or KIND:OPTION=VALUE,...")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--replay", action="store_true", help="also score n training images' codes decoded, "
                   "the samples of a prior that copies its training codes")
    p.add_argument("--name", default="runs")
    p.add_argument("--write-md", type=Path)
    args = p.parse_args()
    rows = [r for run in args.runs for r in sweep(run, args.priors, args.n, args.replay)]
    if args.write_md:
        write_block(args.write_md, markdown(rows, args), MD_START.format(args.name), MD_END.format(args.name))


if __name__ == "__main__":
    main()
