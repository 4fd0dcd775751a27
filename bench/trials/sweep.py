"""Short trainings of one family with different settings, to choose its defaults.

    python bench/trials/sweep.py --dataset mnist --minutes 5 [--parallel 2] [--out bench/out/sweep]
        --variant "cgan" --variant "cgan g_width=32 d_width=32 lr=1.6e-3 lr_d=3.2e-3" ... [--write-md BENCHMARKS.md]

A variant is a model name and `FIELD=VALUE` overrides of its config (the `--set` of
`genforge train`; `batch_size=N` sets the batch). Each trains through the CLI for `--minutes`
of wall-clock time, `--parallel` at a time with 2/P torch threads each, and is evaluated like
bench/families.py (10k samples against the test split, the shipped feature network). Runs
already trained in `--out` are reused, so a sweep can grow one variant at a time.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
from pathlib import Path

# The suite's shared code (common.py) and scripts live one folder up, in bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import command, machine, write_block
from families import evaluate_run, run_trainings, train_args, trained

MD_START, MD_END = "<!-- sweep:{}:start -->", "<!-- sweep:{}:end -->"


def slug(variant: str) -> str:
    """A run directory name for a variant: 'cgan lr_d=1e-3' -> 'cgan-lr-d-1e-3'."""
    return re.sub(r"[^A-Za-z0-9.+-]+", "-", variant.strip().replace("=", "-"))


def markdown(rows: list[tuple[str, dict]], args) -> str:
    lines = [MD_START.format(args.name), f"## Sweep: {args.name} ({args.dataset}, {args.minutes:g} minutes each)", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine()}, cpu; {args.parallel} trainings at a time, "
             f"{max(1, (os.cpu_count() or 2) // args.parallel)} torch thread(s) each, seed 0",
             f"- command: `{command()}`",
             "- 10000 samples against the test split, shipped feature network (as in the families table); "
             "`trained as`: every setting of the run that differs from today's defaults (these move as "
             "sweeps choose them)", "",
             "| variant | trained as | sampler | img/s | epochs | FID | precision | recall | coverage | class read |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for variant, r in rows:
        read = f"{r['conditional_accuracy']:.3f}" if "conditional_accuracy" in r else "-"
        lines.append(f"| `{variant}` | `{r['model']}` | {r['sampler']} | {r['img_per_s']:.0f} | {r['epochs']:.1f} | "
                     f"{r['fid']:.1f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['coverage']:.3f} | {read} |")
    return "\n".join(lines + [MD_END.format(args.name)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--minutes", type=float, default=5)
    p.add_argument("--variant", action="append", required=True, help="'MODEL [FIELD=VALUE ...]'; repeat")
    p.add_argument("--parallel", type=int, default=2)
    p.add_argument("--name", default="sweep", help="the block's name in --write-md")
    p.add_argument("--out", type=Path, default=Path("bench/out/sweep"))
    p.add_argument("--write-md", type=Path)
    args = p.parse_args()
    out = args.out / args.dataset
    out.mkdir(parents=True, exist_ok=True)
    run_trainings([(out / slug(v), train_args(v.split()[0], args.dataset, args.minutes, 0, v.split()[1:]))
                   for v in args.variant], args.parallel)
    rows = []
    for variant in args.variant:
        run = out / slug(variant)
        if not trained(run):
            continue
        rows += [(variant, row) for row in evaluate_run(run, args.dataset, ["gmm"])]
    block = markdown(rows, args)
    print(block)
    if args.write_md:
        write_block(args.write_md, block, MD_START.format(args.name), MD_END.format(args.name))


if __name__ == "__main__":
    main()
