"""Data-parallel training on one CPU: 1 process x 2 threads against 2 processes x 1 thread.

    python bench/distributed.py [--models vae,dcgan,cgan] [--dataset mnist] [--image-size N] [--steps 300]
        [--log-every 25] [--out bench/out/distributed-cpu] [--json bench/out/distributed-cpu.json]
        [--write-md BENCHMARKS.md]

Issue 31's CPU measurement, for honesty rather than for a gain: on one machine's cores torch's
own threads already share the work, and data parallelism adds an all-reduce of the gradients
at every step. Each model trains `--steps` steps twice, with the same global batch B (the
model's default batch):

- `1x2`: `genforge train --batch-size B` with OMP_NUM_THREADS=2, one process;
- `2x1`: `torchrun --standalone --nproc_per_node 2 -m genforge train --batch-size B/2`
  (per rank) with OMP_NUM_THREADS=1 in each of the two processes.

Images per second are read from each run's metrics.jsonl (`img_per_s`, counted for the whole
job over each window of `--log-every` steps); the first window is warm-up and skipped, and the
median of the others is the run's speed. Checkpoints and sample grids are pushed past the end
of the run so that they fall in no window. Writes the rows to --json and, with --write-md, the
block `distributed-cpu` of BENCHMARKS.md. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from genforge.models import model_class
from genforge.train import RunDir

from common import block_header, command, machine, write_block

BLOCK = "distributed-cpu"
MD_START, MD_END = f"<!-- {BLOCK}:start -->", f"<!-- {BLOCK}:end -->"
THREADS = 2  # the cores this measurement shares out: 1 process x 2 threads or 2 processes x 1 thread
LAYOUTS = {"1x2": (1, 2), "2x1": (2, 1)}  # name -> (processes, threads per process)


def default_batch(model: str) -> int:
    """The global batch B of a model: its config's default batch size."""
    return int(model_class(model).Config().batch_size)


def train_args(model: str, dataset: str, image_size: int | None, steps: int, log_every: int,
               batch: int, out: Path) -> list[str]:
    """`genforge train` arguments of one measured run (batch: per process)."""
    args = ["train", "--model", model, "--dataset", dataset, "--steps", str(steps), "--seed", "0",
            "--batch-size", str(batch), "--log-every", str(log_every), "--prior", "none", "--no-progress",
            # neither a checkpoint nor a sample grid inside a measured window (train writes both at the end)
            "--checkpoint-minutes", "1000", "--sample-every", str(steps + 1), "--out", str(out)]
    if image_size:
        args += ["--image-size", str(image_size)]
    return args


def launch(processes: int, args: list[str]) -> list[str]:
    """The command line: the plain CLI for one process, torchrun (as a module of this Python, so
    the same environment) for several."""
    if processes == 1:
        return [sys.executable, "-m", "genforge", *args]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
            "-m", "genforge", *args]


def run(cmd: list[str], threads: int, log: Path, timeout_s: float) -> tuple[int, float]:
    """Runs cmd with `threads` torch threads per process, output into log; (exit status, seconds).
    A run past timeout_s is ended with its whole process group (torchrun and its ranks)."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            code = -signal.SIGKILL
    return code, time.perf_counter() - start


def speed(rows: list[dict]) -> tuple[float, list[float]]:
    """(median img/s without the first window, the img/s of every window) of a run's metrics rows."""
    windows = [float(r["img_per_s"]) for r in rows if "img_per_s" in r]
    if len(windows) < 2:
        raise ValueError(f"{len(windows)} logged window(s): too few to skip the warm-up; "
                         "raise --steps or lower --log-every")
    return statistics.median(windows[1:]), windows


def measure(model: str, layout: str, args, out: Path) -> dict:
    """Trains one (model, layout) from scratch and reads its speed."""
    processes, threads = LAYOUTS[layout]
    batch = default_batch(model)
    if batch % processes:
        raise SystemExit(f"{model}: its batch {batch} does not split into {processes} equal per-rank batches")
    run_dir = out / f"{model}-{layout}"
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd = launch(processes, train_args(model, args.dataset, args.image_size, args.steps, args.log_every,
                                       batch // processes, run_dir))
    log = out / f"{model}-{layout}.log"
    print(f"{model} {layout}: {processes} process(es) x {threads} thread(s), batch {batch // processes} "
          f"per process ({batch} in all)", flush=True)
    code, wall = run(cmd, threads, log, args.timeout)
    row = {"layout": layout, "processes": processes, "threads": threads, "batch_per_process": batch // processes,
           "global_batch": batch, "wall_s": round(wall, 1), "run": str(run_dir), "log": str(log),
           "command": " ".join(cmd[1:])}
    if code != 0:
        lines = log.read_text().strip().splitlines() if log.exists() else []
        tail = [line for line in lines if "error:" in line][:3] or lines[-3:]  # torchrun ends with a summary
        print(f"  failed (exit {code}); see {log}" + "".join(f"\n    {line}" for line in tail), flush=True)
        return {**row, "error": f"exit {code}"}
    try:
        row["img_per_s"], row["windows"] = speed(RunDir(run_dir).read_metrics())
    except ValueError as e:
        return {**row, "error": str(e)}
    config = RunDir(run_dir).read_config().get("train", {})
    row["world_size"] = config.get("world_size", 1)  # what the run says it was, to check the layout took
    if row["world_size"] != processes:
        return {**row, "error": f"the run reports world size {row['world_size']}, not {processes}"}
    print(f"  {row['img_per_s']:.0f} img/s (median of {len(row['windows']) - 1} windows), {wall:.0f} s in all",
          flush=True)
    return row


def ratio(pair: dict) -> float | None:
    """img/s of 2x1 / img/s of 1x2; None unless both runs were measured without error."""
    if any("error" in pair[k] for k in LAYOUTS):
        return None
    return round(pair["2x1"]["img_per_s"] / pair["1x2"]["img_per_s"], 3)


def reading(results: list[dict]) -> str:
    """One line on what the measured ratios say (nothing beyond them): each model's 2x1 run is
    slower (ratio under 0.95), even (within 5%) or faster (over 1.05) than its 1x2 run."""
    ratios = [r["ratio"] for r in results if r["ratio"] is not None]
    if not ratios:
        return "Reading: no model finished both runs; nothing to compare."
    kinds = {"slower": sum(r < 0.95 for r in ratios), "within 5% of it": sum(0.95 <= r <= 1.05 for r in ratios),
             "faster": sum(r > 1.05 for r in ratios)}
    if len(ratios) in kinds.values():
        verdict = next(k for k, n in kinds.items() if n == len(ratios)) + " for every model"
        verdict += " (no gain)" if kinds["faster"] == 0 else ""
    else:
        verdict = ", ".join(f"{k} for {n}" for k, n in kinds.items() if n) + f" of {len(ratios)} models"
    low, high = min(ratios), max(ratios)
    span = f"{low:.2f}x" if low == high else f"{low:.2f}x to {high:.2f}x"
    return (f"Reading: on {os.cpu_count()} CPU cores, 2 processes x 1 thread train at {span} the images/second "
            f"of 1 process x 2 threads: {verdict}.")


def markdown(results: list[dict], args) -> str:
    size = f" at {args.image_size}x{args.image_size}" if args.image_size else ""
    lines = block_header(
        MD_START, "Data-parallel training on CPU: 1 process x 2 threads against 2 processes x 1 thread",
        f"{args.steps} steps per run from scratch, img/s of the whole job from metrics.jsonl every "
        f"{args.log_every} steps; the first window skipped as warm-up, median of the others",
        "1x2: `genforge train --batch-size B` with OMP_NUM_THREADS=2; 2x1: `torchrun --standalone "
        "--nproc_per_node 2 -m genforge train --batch-size B/2` with OMP_NUM_THREADS=1 per process "
        "(gloo); B, the global batch, is the model's default batch in both")
    lines += ["| model | data set | global batch | 1x2 img/s | 2x1 img/s | 2x1 / 1x2 |",
              "|---|---|---:|---:|---:|---:|"]
    for r in results:
        cells = [f"failed ({r[k]['error']})" if "error" in r[k] else f"{r[k]['img_per_s']:.0f}" for k in LAYOUTS]
        share = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['model']} | {r['dataset']}{size} | {r['global_batch']} | {cells[0]} | {cells[1]} | "
                     f"{share} |")
    lines += ["", reading(results), MD_END]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="vae,dcgan,cgan")
    p.add_argument("--dataset", default="mnist")
    p.add_argument("--image-size", type=int, help="train at this size (default: the data set's own; "
                   "e.g. --dataset emoji --image-size 32)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--log-every", type=int, default=25, help="steps per measured window")
    p.add_argument("--timeout", type=float, default=3600, help="seconds one run may take before it is ended")
    p.add_argument("--out", type=Path, default=Path("bench/out/distributed-cpu"), help="run directories and logs")
    p.add_argument("--json", type=Path, default=Path("bench/out/distributed-cpu.json"))
    p.add_argument("--write-md", type=Path)
    args = p.parse_args()
    if args.steps < 2 * args.log_every:
        p.error("--steps must be at least twice --log-every: the first window is warm-up")
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for model in args.models.split(","):
        pair = {layout: measure(model, layout, args, args.out) for layout in LAYOUTS}
        results.append({"model": model, "dataset": args.dataset, "image_size": args.image_size,
                        "global_batch": default_batch(model), **pair, "ratio": ratio(pair)})
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"command": command(), "machine": machine(), "steps": args.steps,
                                     "log_every": args.log_every, "results": results}, indent=1))
    block = markdown(results, args)
    print(block)
    failed = [f"{r['model']} {k}" for r in results for k in LAYOUTS if "error" in r[k]]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}; see the logs in {args.out} (no block written)")
    if args.write_md:
        write_block(args.write_md, block, MD_START, MD_END)


if __name__ == "__main__":
    main()
