"""How much of an autoencoder's sample recall its latent prior costs, and how much its decoder.

    python bench/trials/recall_ceiling.py RUN_DIR... [--n 10000] [--name NAME] [--write-md BENCHMARKS.md]

For each trained autoencoder run: the codes (posterior means) of n training images, decoded,
are what a perfect latent prior would sample, so their precision and recall against the test
split are the ceiling of any prior on that decoder; beside them, n samples through the run's
fitted prior (the families table's sampler), the same requested classes for a conditional model.
Also the run's last KL term (nats per image): how much the code carries. Same metrics and
feature network as bench/families.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import genforge
from genforge.metrics.evaluate import DECODED, decoded_codes, evaluate_images
from genforge.train import RunDir

# The suite's shared code (common.py) and scripts live one folder up, in bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import block_header, model_label as label, write_block

MD_START, MD_END = "<!-- recall-ceiling:{}:start -->", "<!-- recall-ceiling:{}:end -->"


def measure(run: Path, n: int) -> dict:
    model = genforge.load(run)
    dataset = model.run_config["data"]["dataset"]
    conditional = model.module.is_conditional
    requested = torch.arange(n) % model.module.config.num_classes if conditional else None
    sampled = evaluate_images(model.sample(n, seed=0, labels=requested), dataset, requested)
    decoded = decoded_codes(model, dataset, n)
    last = RunDir(run).read_metrics()[-1]
    rows = {"model": label(model), "run": str(run), "prior": model.prior_kind, "kl": last.get("kl"),
            "minutes": last["time_s"] / 60,
            "decoded codes": {k: decoded[f"decoded_{k}"] for k in DECODED},
            "prior samples": {k: sampled[k] for k in DECODED}}
    for side in ("decoded codes", "prior samples"):
        print(f"{run.name:14s} {side:13s} " + "  ".join(f"{k} {rows[side][k]:.3f}" for k in DECODED), flush=True)
    return rows


def markdown(results: list[dict], args) -> str:
    lines = block_header(MD_START.format(args.name), f"Recall ceiling: {args.name}",
                         f"decoded codes: posterior means of {args.n} training images, decoded (a perfect prior's "
                         f"samples); prior samples: {args.n} draws through the run's fitted prior; both against "
                         "the test split, shipped feature network")
    lines += ["| run | model | minutes | KL (nats) | decoded codes: FID | precision | recall | coverage | "
              "prior samples: FID | precision | recall | coverage |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        kl = f"{r['kl']:.0f}" if r["kl"] is not None else "-"
        cells = [cell for side in ("decoded codes", "prior samples")
                 for cell in (f"{r[side]['fid']:.1f}", *(f"{r[side][k]:.3f}" for k in DECODED[1:]))]
        lines.append(f"| {r['run']} | `{r['model']}` | {r['minutes']:.0f} | {kl} | " + " | ".join(cells) + " |")
    return "\n".join(lines + [MD_END.format(args.name)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--name", default="runs")
    p.add_argument("--write-md", type=Path)
    args = p.parse_args()
    results = [measure(run, args.n) for run in args.runs]
    if args.write_md:
        write_block(args.write_md, markdown(results, args), MD_START.format(args.name), MD_END.format(args.name))


if __name__ == "__main__":
    main()
