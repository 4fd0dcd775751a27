"""Which latent prior suits a trained autoencoder: several priors fitted to the same codes, each
sampled and scored the way the families table scores a model.

    python bench/prior_sweep.py RUN_DIR... --priors gmm gmm:components=30 gmm:covariance=diag,components=40 \
        [--n 10000] [--name NAME] [--write-md BENCHMARKS.md]

A prior is KIND or KIND:OPTION=VALUE,... (the options of `genforge prior --set`). For each run
the codes (posterior means) of its training set are computed once; each prior is fitted to
them in memory (the run's own prior file is not touched), n images are sampled through it (the
classes in turn for a conditional model) and compared with the test split by the shipped
feature network: FID, precision, recall, density, coverage, the rate at which the classifier
reads the requested class, and the seconds the fit took.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import torch

import genforge
from genforge.api import training_codes, training_set
from genforge.metrics.evaluate import evaluate_images
from genforge.priors import fit_prior

from common import command, machine, write_block
from families import label

MD_START, MD_END = "<!-- prior-sweep:{}:start -->", "<!-- prior-sweep:{}:end -->"
COLUMNS = ("fid", "precision", "recall", "density", "coverage")


def parse_prior(spec: str) -> tuple[str, dict]:
    """"gmm:components=30,covariance=diag" -> ("gmm", {"components": 30, "covariance": "diag"})."""
    kind, _, rest = spec.partition(":")
    options = {}
    for pair in filter(None, rest.split(",")):
        key, _, value = pair.partition("=")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return kind, options


def sweep(run: Path, specs: list[str], n: int) -> list[dict]:
    model = genforge.load(run)
    dataset = model.run_config["data"]["dataset"]
    codes, labels = training_codes(model, training_set(model))
    num_classes = model.module.config.num_classes
    requested = torch.arange(n) % num_classes if labels is not None else None
    rows = []
    for spec in specs:
        kind, options = parse_prior(spec)
        start = time.perf_counter()
        model.prior = fit_prior(kind, codes, labels, num_classes if labels is not None else None, **options)
        fit_s = time.perf_counter() - start
        scores = evaluate_images(model.sample(n, seed=0, labels=requested), dataset, requested)
        row = {"run": str(run), "model": label(model), "prior": spec, "fit_s": fit_s,
               **{k: scores[k] for k in COLUMNS}, "class_read": scores.get("conditional_accuracy")}
        print(f"{run.name:14s} {spec:40s} fit {fit_s:5.1f} s  " + "  ".join(f"{k} {row[k]:.3f}" for k in COLUMNS),
              flush=True)
        rows.append(row)
    return rows


def markdown(rows: list[dict], args) -> str:
    lines = [MD_START.format(args.name), f"## Prior sweep: {args.name}", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine()}, cpu", f"- command: `{command()}`",
             f"- {args.n} samples per prior against the test split, shipped feature network; "
             "each prior fitted to the posterior means of the run's training set", "",
             "| run | model | prior | fit (s) | FID | precision | recall | density | coverage | class read |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        read = "-" if r["class_read"] is None else f"{100 * r['class_read']:.1f}%"
        lines.append(f"| {r['run']} | `{r['model']}` | `{r['prior']}` | {r['fit_s']:.0f} | {r['fid']:.1f} | "
                     + " | ".join(f"{r[k]:.3f}" for k in COLUMNS[1:]) + f" | {read} |")
    return "\n".join(lines + [MD_END.format(args.name)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--priors", nargs="+", default=["gmm"], help="KIND or KIND:OPTION=VALUE,...")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--name", default="runs")
    p.add_argument("--write-md", type=Path)
    args = p.parse_args()
    rows = [row for run in args.runs for row in sweep(run, args.priors, args.n)]
    if args.write_md:
        write_block(args.write_md, markdown(rows, args), MD_START.format(args.name), MD_END.format(args.name))


if __name__ == "__main__":
    main()
