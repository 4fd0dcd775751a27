"""How long a full evaluation takes: 10k samples of a trained model, every metric, against
the test split (the real side cached, as it is after the first evaluation of a data set).

    python bench/eval_speed.py RUN_DIR [RUN_DIR ...] [--n 10000] [--write-md BENCHMARKS.md] [--block NAME]

Each run is evaluated twice: first with an empty feature cache (real features and the floor
computed), then warm. The table keeps the metrics too, so it doubles as a quality table of
the runs given.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path


import genforge
from genforge.data import cache_dir
from genforge.metrics.evaluate import evaluate_model

from common import command, machine, write_block

MD_START, MD_END = "<!-- eval-speed:start -->", "<!-- eval-speed:end -->"
SHOW = ("fid", "kid", "precision", "recall", "density", "coverage", "classifier_score", "classes_covered",
        "recon_ssim", "nll")


def timed(run_dir: str, n: int) -> tuple[dict, float, float]:
    model = genforge.load(run_dir)
    saved = os.environ.get("GENFORGE_CACHE")
    with tempfile.TemporaryDirectory() as cache:
        # An empty feature cache: nothing embedded yet. Data sets that live in the cache (emoji's
        # npm tarballs and decoded arrays) are linked in, as they are on a machine that fetched them.
        for entry in cache_dir().iterdir() if cache_dir().is_dir() else ():
            if entry.name != "features":
                (Path(cache) / entry.name).symlink_to(entry.resolve())
        os.environ["GENFORGE_CACHE"] = cache
        t = time.perf_counter()
        evaluate_model(model, n=n)
        cold = time.perf_counter() - t
    if saved is None:
        os.environ.pop("GENFORGE_CACHE")
    else:
        os.environ["GENFORGE_CACHE"] = saved
    t = time.perf_counter()
    result = evaluate_model(model, n=n)
    warm = time.perf_counter() - t
    return result, cold, warm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--block", help="name of the Markdown block (default eval-speed), e.g. eval-speed-emoji")
    p.add_argument("--title", help="words added to the block's title, e.g. 'emoji, colour'")
    p.add_argument("--write-md", type=Path)
    args = p.parse_args()
    start, end = (f"<!-- {args.block}:start -->", f"<!-- {args.block}:end -->") if args.block else (MD_START, MD_END)
    lines = [start, f"## Evaluation: time and metrics{' (' + args.title + ')' if args.title else ''}", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine()}, cpu",
             f"- command: `{command()}`",
             f"- other work on the machine: load average {os.getloadavg()[0]:.1f} at the start on {os.cpu_count()} cores",
             f"- {args.n} samples per run against the test split; cold = empty feature cache (real "
             "features and floor computed), warm = cached; both include sampling", "",
             "| run | model | cold s | warm s | " + " | ".join(SHOW) + " |",
             "|---|---|---:|---:|" + "---:|" * len(SHOW)]
    floor = None
    for run in args.runs:
        result, cold, warm = timed(run, args.n)
        floor = result["floor"]
        cells = [f"{result[k]:.3g}" if k in result else "-" for k in SHOW]
        lines.append(f"| {run} | {result['model']} | {cold:.1f} | {warm:.1f} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    lines += ["", f"Real floor ({floor.get('n_train', '10k')} train vs test): "
              + ", ".join(f"{k} {v:.3g}" for k, v in floor.items() if k != "n_train"), end]
    if args.write_md:
        write_block(args.write_md, "\n".join(lines), start, end)


if __name__ == "__main__":
    main()
