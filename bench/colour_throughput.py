"""Training speed of each colour model on emoji at 32x32 and 64x64.

    python bench/colour_throughput.py [--models resgan,resgan-cond,ref-dcgan-torch,...] [--sizes 32,64]
        [--seconds 45] [--nice -10] [--out bench/out/colour-throughput] [--write-md BENCHMARKS.md]

Each (model, size) trains through the CLI (`genforge train --dataset emoji --image-size S`) in
its own process for `--seconds` of wall-clock time at the model's default batch size and the
default precision (bf16 autocast on CPUs with AMX), logging every 5 steps. The speed is the
median of the logged images per second after the first log line (which holds start-up). The
machine may be shared: `--nice -10` (root only) gives the measured process the larger share of
the cores, so the number is close to an idle machine's; the block says what the load was.

Writes <out>/rates.json ({"MODEL@SIZE": {"img_per_s", "steps_per_s", "batch_size"}}), which
bench/families.py --rates reads to turn "15 minutes on 2 cores" into a step budget, so
trainings that share the machine still get the compute of 15 idle minutes each.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import block_header, write_block

MODELS = "resgan,resgan-cond,ref-dcgan-torch,dcgan,cgan,vae,cvae,cvae-gan"
START, END = "<!-- colour-throughput:start -->", "<!-- colour-throughput:end -->"


def measure(model: str, size: int, seconds: float, nice: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "genforge", "train", "--model", model, "--dataset", "emoji",
               "--image-size", str(size), "--minutes", str(seconds / 60), "--log-every", "5",
               "--sample-every", "100000", "--out", str(run), "--no-progress"]
        if nice:
            cmd = ["nice", "-n", str(nice), *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        config = json.loads((run / "config.json").read_text())
    speeds = [r["img_per_s"] for r in rows[1:] if "img_per_s" in r] or [rows[-1]["img_per_s"]]
    batch = config["train"]["batch_size"]
    img_per_s = statistics.median(speeds)
    return {"img_per_s": img_per_s, "steps_per_s": img_per_s / batch, "batch_size": batch,
            "precision": config["train"].get("precision_used", "fp32"), "log_lines": len(rows)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default=MODELS)
    p.add_argument("--sizes", default="32,64")
    p.add_argument("--seconds", type=float, default=45)
    p.add_argument("--nice", type=int, default=0, help="niceness of each measured process (negative: root only)")
    p.add_argument("--out", type=Path, default=Path("bench/out/colour-throughput"))
    p.add_argument("--write-md", type=Path)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "rates.json"
    rates = json.loads(path.read_text()) if path.exists() else {}
    load = os.getloadavg()[0]
    for size in (int(s) for s in args.sizes.split(",")):
        for model in args.models.split(","):
            r = measure(model, size, args.seconds, args.nice)
            rates[f"{model}@{size}"] = r
            path.write_text(json.dumps(rates, indent=1))
            print(f"{model:16s} {size}x{size}  {r['img_per_s']:7.1f} img/s  batch {r['batch_size']}  "
                  f"{r['precision']}", flush=True)
    load = max(load, os.getloadavg()[0])
    lines = block_header(START, "Training speed of the colour models (emoji, CPU)",
                         f"{args.seconds:g} s of training per case through `genforge train`, default batch and "
                         "precision; median of the images per second logged every 5 steps after the first line",
                         f"other work on the machine: load average up to {load:.1f} on "
                         f"{os.cpu_count()} cores; each case ran at niceness {args.nice}")
    lines += ["| model | 32x32 img/s | 64x64 img/s | batch | precision |", "|---|---:|---:|---:|---|"]
    for model in args.models.split(","):
        cells = [f"{rates[f'{model}@{s}']['img_per_s']:.0f}" if f"{model}@{s}" in rates else "-" for s in (32, 64)]
        any_rate = rates.get(f"{model}@32") or rates.get(f"{model}@64")
        lines.append(f"| {model} | {cells[0]} | {cells[1]} | {any_rate['batch_size']} | {any_rate['precision']} |")
    block = "\n".join(lines + [END])
    print(block)
    if args.write_md:
        write_block(args.write_md, block, START, END)


if __name__ == "__main__":
    main()
