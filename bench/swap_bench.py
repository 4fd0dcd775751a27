"""Class swap with conditional autoencoders: the label alone, against the label with the code
moved by the difference of the two classes' mean codes (what `genforge edit --op swap-class` does).

    python bench/swap_bench.py RUN_DIR... [--n 1000] [--name NAME] [--write-md BENCHMARKS.md]

Each of n test images goes to a random other class (edit_bench.py's class-change measure, the
same images and targets for both ways): the rate at which the shipped classifier reads the
target, the FID of the edited set against real images of the target classes, and the style
kept (an edit nearer its source than a random real image of its target class).
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path

import torch

import genforge
from genforge.edit import Editor, as_float, read_images

from common import command, machine, write_block
from edit_bench import class_change

MD_START, MD_END = "<!-- swap:{}:start -->", "<!-- swap:{}:end -->"
WAYS = {"label only": False, "label + code moved": True}


def measure(run: Path, n: int, seed: int) -> list[dict]:
    model = genforge.load(run)
    editor = Editor(model, seed=seed)
    test = read_images(f"{model.run_config['data']['dataset']}:test", editor.image_shape)
    chosen = test.subset(torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n])
    x, labels = as_float(chosen), chosen.labels
    config = model.run_config["model_config"]
    rows = []
    for way, move in WAYS.items():
        result = class_change(editor, x, labels, test, True, torch.Generator().manual_seed(seed), move_code=move)
        rows.append({"run": str(run), "model": model.name, "beta": config.get("beta"),
                     "latent_dim": config.get("latent_dim"), "way": way, **result})
        print(f"{run}  {way:20s} target read {result['target_rate']:.3f}  FID {result['fid_vs_target_class']:.1f}  "
              f"style kept {result['style_kept']:.3f}", flush=True)
    return rows


def markdown(rows: list[dict], args) -> str:
    lines = [MD_START.format(args.name), f"## Class swap, label only or with the code moved: {args.name}", "",
             f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
             f"- machine: {machine()}, cpu", f"- command: `{command()}`",
             f"- {args.n} test images, each to a random other class; shipped classifier", "",
             "| run | model | beta | code dims | swap | target read | FID vs target class | style kept | s per image |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['run']} | `{r['model']}` | {r['beta']} | {r['latent_dim']} | {r['way']} | "
                     f"{r['target_rate']:.1%} | {r['fid_vs_target_class']:.1f} | {r['style_kept']:.1%} | "
                     f"{r['seconds_per_image']:.4f} |")
    return "\n".join(lines + [MD_END.format(args.name)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--name", default="runs")
    p.add_argument("--write-md", type=Path)
    args = p.parse_args()
    rows = [row for run in args.runs for row in measure(run, args.n, args.seed)]
    if args.write_md:
        write_block(args.write_md, markdown(rows, args), MD_START.format(args.name), MD_END.format(args.name))


if __name__ == "__main__":
    main()
