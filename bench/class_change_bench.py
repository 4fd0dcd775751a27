"""Changing an image's class through a model's codes, each way genforge offers, side by side.

    python bench/class_change_bench.py RUN_DIR... [--n 1000] [--name NAME] [--write-md BENCHMARKS.md]

Conditional autoencoders (class swap): the label alone, against the label with the code moved
from the source class's codes to the target's by the optimal-transport map between Gaussians
fitted to each, all the way, 1.25 times as far (what `genforge edit --op swap-class` does) and
1.5 times. Unconditional models (attribute
edit): the difference of the two classes' mean codes times 1.5 (`--method vector`) against the
transport map (`--method transport`), all the way and 1.5 times as far (`--strength`, default
1.5). Conditional GANs: the class swap alone.

Each of n test images goes to a random other class (edit_bench.py's class-change measure, the
same images and targets for every way): the rate at which the shipped classifier reads the
target, the FID of the edited set against real images of the target classes, and the style
kept (an edit nearer its source than a random real image of its target class).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

import genforge
from genforge.edit import Editor, as_float, read_images

from common import block_header, write_block
from edit_bench import class_change

MD_START, MD_END = "<!-- class-change:{}:start -->", "<!-- class-change:{}:end -->"


def ways(editor: Editor) -> dict[str, dict]:
    """The ways to change this model's class: a name and class_change's keyword arguments."""
    if not editor.model.is_conditional:
        return {"attribute: vector x1.5": {"swap": False, "method": "vector", "strength": 1.5},
                "attribute: transport x1": {"swap": False, "method": "transport", "strength": 1.0},
                "attribute: transport x1.5": {"swap": False, "method": "transport", "strength": 1.5}}
    if not editor.model.is_autoencoder:
        return {"swap: label": {"swap": True}}
    return {"swap: label only": {"swap": True, "move_code": False},
            "swap: label + code transported x1": {"swap": True, "move_code": True, "strength": 1.0},
            "swap: label + code transported x1.25": {"swap": True, "move_code": True, "strength": 1.25},
            "swap: label + code transported x1.5": {"swap": True, "move_code": True, "strength": 1.5}}


def measure(run: Path, n: int, seed: int) -> list[dict]:
    model = genforge.load(run)
    editor = Editor(model, seed=seed)
    test = read_images(f"{model.run_config['data']['dataset']}:test", editor.image_shape)
    chosen = test.subset(torch.randperm(len(test), generator=torch.Generator().manual_seed(seed))[:n])
    x, labels = as_float(chosen), chosen.labels
    config = model.run_config["model_config"]
    rows = []
    for way, options in ways(editor).items():
        result = class_change(editor, x, labels, test, generator=torch.Generator().manual_seed(seed), **options)
        rows.append({"run": str(run), "model": model.name, "beta": config.get("beta", "-"),
                     "latent_dim": config.get("latent_dim", "-"), "way": way, **result})
        print(f"{run}  {way:32s} target read {result['target_rate']:.3f}  FID {result['fid_vs_target_class']:.1f}  "
              f"style kept {result['style_kept']:.3f}", flush=True)
    return rows


def markdown(rows: list[dict], args) -> str:
    lines = block_header(MD_START.format(args.name), f"Class change, each way: {args.name}",
                         f"{args.n} test images, each to a random other class (the same for every way); "
                         "shipped classifier")
    lines += ["| run | model | beta | code dims | way | target read | FID vs target class | style kept | s per image |",
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
