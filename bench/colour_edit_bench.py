"""Edits on colour images: vendor swap between emoji sets, and calibrated colour-property edits.

    python bench/colour_edit_bench.py --swap RUN_DIR [RUN_DIR ...] --attribute RUN_DIR [RUN_DIR ...]
        [--n 200] [--amounts hue=0.2,hue=-0.2,saturation=-0.2,brightness=-0.2,area=-0.1]
        [--figures docs/images] [--budget TEXT] [--write-md BENCHMARKS.md] [--block NAME]

On emoji test images at each run's size, judged by emoji's shipped feature network:

(a) vendor swap (--swap: runs conditioned on the vendor, `genforge train --labels style` or
    `class+style`): n google emoji redrawn as twitter ones and n twitter ones as google, each
    with a counterpart drawn by the other vendor in the test split (emoji_codes pairs them).
    Reported per direction: the share of swaps in which the network reads the target vendor
    (target at least 90%), the share in which it reads the emoji's own category (target at least
    80%; beside the same share for the unedited inputs), and the mean distance in the network's
    features from the swap to the real target-vendor drawing of the same emoji, beside the
    distance from the unedited input to it (a swap that works comes nearer than its input).
(b) property edits (--attribute: any run): for each PROPERTY=AMOUNT, the calibrated edit
    (`genforge edit --op attribute --to PROPERTY=AMOUNT`, edit/calibrate.py) of n test images:
    the change achieved (mean and standard deviation, measured from each image's
    reconstruction), the change the linear model's step alone made, the largest mean change of
    another property, and the share of edits in which the network reads the input's category
    (beside the share for the plain reconstructions). Hue rows count only images whose colour
    has a hue (saturation-weighted hue vector longer than 0.1; greys and whites have none).

--figures DIR writes emoji-vendor-swap.png (google originals, their swaps to twitter, the real
twitter drawings) from the first --swap run and emoji-hue-edit.png (hue -0.3 .. +0.3 in rows)
from the first --attribute run. --budget says how the runs were trained, for the block's notes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import genforge
from genforge.data import load_dataset, locate
from genforge.data.emoji import emoji_codes
from genforge.edit import Editor, FitConfig, as_float
from genforge.edit import colour

sys.path.insert(0, str(Path(__file__).parent))
from common import block_header, model_label, write_block  # noqa: E402

MD_START, MD_END = "<!-- colour-edit:{}:start -->", "<!-- colour-edit:{}:end -->"
DEFAULT_AMOUNTS = "hue=0.2,hue=-0.2,saturation=-0.2,brightness=-0.2,area=-0.1,area=0.1"
HUED = 0.1  # a hue vector shorter than this: the image has no colour to turn


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def test_split(size: int):
    """emoji's test split at `size` and the unified code of each image (the same for both vendors)."""
    data = load_dataset("emoji", "test", image_size=size)
    folder = Path(locate("emoji", "test")[0]).parent
    codes = emoji_codes(folder, "test")
    if len(codes) != len(data):
        raise SystemExit(f"emoji_codes gave {len(codes)} codes for {len(data)} test images")
    return data, codes


def pairs(data, codes: list[str], source: int, target: int, n: int, generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of up to n images of vendor `source` and of the same emoji drawn by vendor `target`."""
    where = {(c, int(s)): i for i, (c, s) in enumerate(zip(codes, data.styles.tolist()))}
    found = [(i, where[c, target]) for i, (c, s) in enumerate(zip(codes, data.styles.tolist()))
             if s == source and (c, target) in where]
    pick = torch.randperm(len(found), generator=generator)[:n].sort().values
    chosen = torch.tensor(found)[pick]
    return chosen[:, 0], chosen[:, 1]


def vendor_swap(run: str, n: int, search: FitConfig, seed: int) -> tuple[list[dict], dict]:
    model = genforge.load(run)
    editor = Editor(model, search, seed=seed)
    if editor.labelling == "class":
        raise SystemExit(f"{run}: trained on categories; a vendor swap needs --labels style or class+style")
    reader = editor.classifier()
    data, codes = test_split(editor.image_shape[1])
    names = data.style_names
    rows, figure = [], {}
    for source, target in ((0, 1), (1, 0)):
        src, dst = pairs(data, codes, source, target, n, torch.Generator().manual_seed(seed))
        inputs = editor.labelled(data.subset(src))
        x, real = as_float(inputs), as_float(data.subset(dst))
        start = time.perf_counter()
        out = editor.swap_class(x, inputs.labels, editor.swap_targets(names[target], inputs.labels))
        seconds = time.perf_counter() - start
        category = data.labels[src]
        read_c, read_s = reader.category_and_style(out)
        in_c, _ = reader.category_and_style(x)
        f_out, f_in, f_real = (reader.features_and_logits(v)[0].detach() for v in (out, x, real))
        rows.append({"run": model_label(model), "direction": f"{names[source]} -> {names[target]}",
                     "n": len(x), "vendor": float((read_s == target).float().mean()),
                     "category": float((read_c == category).float().mean()),
                     "category_in": float((in_c == category).float().mean()),
                     "dist_swap": float((f_out - f_real).norm(dim=1).mean()),
                     "dist_input": float((f_in - f_real).norm(dim=1).mean()), "s_per_image": seconds / len(x)})
        log(f"  swap {rows[-1]['direction']}: {rows[-1]}")
        if source == 0:
            figure = {"inputs": x[:8], "swaps": out[:8], "real": real[:8]}
    return rows, figure


def property_edits(run: str, n: int, amounts: list[tuple[str, float]], search: FitConfig, seed: int) -> list[dict]:
    model = genforge.load(run)
    editor = Editor(model, search, seed=seed)
    reader = editor.classifier()
    data = load_dataset("emoji", "test", image_size=editor.image_shape[1])
    pick = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    images = editor.labelled(data.subset(pick))
    x = as_float(images)
    labels = images.labels if editor.model.is_conditional else None
    category = reader.category_and_style(x)[0]
    rows = []
    for name, amount in amounts:
        start = time.perf_counter()
        edit = editor.change_property(x, name, amount, labels)
        seconds = time.perf_counter() - start
        keep = torch.ones(len(x), dtype=torch.bool)
        if name == "hue":
            keep = colour.hue_vector(edit.reconstructions, editor.background).norm(dim=1) > HUED
        got, unit = edit.achieved[keep], edit.unit_achieved[keep]
        worst = max(edit.drift, key=lambda k: edit.drift[k][keep].abs().mean())
        rows.append({"run": model_label(model), "property": name, "asked": amount, "n": int(keep.sum()),
                     "achieved": float(got.mean()) if len(got) else float("nan"),
                     "sd": float(got.std(correction=0)) if len(got) else float("nan"),
                     "unit": float(unit.mean()) if len(unit) else float("nan"),
                     "drift": f"{worst} {edit.drift[worst][keep].mean():+.3f}",
                     "category": float((reader.category_and_style(edit.images)[0] == category).float().mean()),
                     "category_recon": float((reader.category_and_style(edit.reconstructions)[0] == category)
                                             .float().mean()),
                     "s_per_image": seconds / len(x)})
        log(f"  {name}={amount:+g}: {rows[-1]}")
    return rows


def hue_figure(run: str, search: FitConfig, seed: int, path: Path) -> None:
    from genforge.report.grid import make_grid, save_png
    editor = Editor(genforge.load(run), search, seed=seed)
    data = load_dataset("emoji", "test", image_size=editor.image_shape[1])
    x_all = as_float(data)
    hued = colour.hue_vector(x_all).norm(dim=1) > 0.3  # colourful inputs show a hue turn best
    pick = hued.nonzero().flatten()[torch.randperm(int(hued.sum()), generator=torch.Generator().manual_seed(seed))[:6]]
    images = editor.labelled(data.subset(pick.sort().values))
    x = as_float(images)
    labels = images.labels if editor.model.is_conditional else None
    amounts = (-0.3, -0.2, -0.1, 0.1, 0.2, 0.3)
    edits = {a: editor.change_property(x, "hue", a, labels) for a in amounts}
    recon = edits[amounts[0]].reconstructions
    columns = [x, *(edits[a].images for a in amounts[:3]), recon, *(edits[a].images for a in amounts[3:])]
    grid = torch.stack(columns, 1).flatten(0, 1)  # one row per image: input, hue -0.3 .. reconstruction .. +0.3
    save_png(make_grid(grid, nrow=len(columns), scale=2), path)
    log(f"wrote {path}")


def swap_figure(figure: dict, path: Path) -> None:
    from genforge.report.grid import make_grid, save_png
    grid = torch.cat([figure["inputs"], figure["swaps"], figure["real"]])
    save_png(make_grid(grid, nrow=len(figure["inputs"]), scale=2), path)
    log(f"wrote {path}")


def markdown(swaps: list[dict], edits: list[dict], n: int, budget: str, key: str) -> str:
    notes = [f"n = {n} emoji test images per direction / per edit; judged by emoji's shipped feature network "
             "(category 76.8%, vendor 93.9% on the test split)"]
    if budget:
        notes.append(f"runs: {budget}")
    lines = block_header(MD_START.format(key), "Colour edits on emoji: vendor swap and property edits", *notes)
    if swaps:
        lines += ["Vendor swap (targets: vendor read >= 90%, category kept >= 80%). Distance: mean distance in the "
                  "feature network's features to the real drawing of the same emoji by the target vendor.", "",
                  "| run | direction | n | target vendor read | category kept (inputs) | distance: swap (input) "
                  "| s/image |", "|---|---|---:|---:|---:|---:|---:|"]
        for r in swaps:
            lines.append(f"| {r['run']} | {r['direction']} | {r['n']} | {r['vendor']:.1%} | {r['category']:.1%} "
                         f"({r['category_in']:.1%}) | {r['dist_swap']:.2f} ({r['dist_input']:.2f}) "
                         f"| {r['s_per_image']:.3f} |")
        lines.append("")
    if edits:
        lines += ["Property edits (`--to PROPERTY=AMOUNT`), change measured from each image's reconstruction; "
                  "hue in fractions of the colour circle over images with a hue; linear step: the change "
                  "the linear model's move made before the line search.", "",
                  "| run | property | asked | n | achieved mean (sd) | linear step | largest other change "
                  "| category kept (reconstructions) | s/image |", "|---|---|---:|---:|---:|---:|---|---:|---:|"]
        for r in edits:
            lines.append(f"| {r['run']} | {r['property']} | {r['asked']:+g} | {r['n']} | {r['achieved']:+.3f} "
                         f"({r['sd']:.3f}) | {r['unit']:+.3f} | {r['drift']} | {r['category']:.1%} "
                         f"({r['category_recon']:.1%}) | {r['s_per_image']:.3f} |")
        lines.append("")
    lines.append(MD_END.format(key))
    return "\n".join(lines)


def parse_amounts(text: str) -> list[tuple[str, float]]:
    out = []
    for item in text.split(","):
        name, _, amount = item.partition("=")
        out.append((name.strip(), float(amount)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--swap", nargs="*", default=[], help="runs conditioned on the vendor (--labels style/class+style)")
    p.add_argument("--attribute", nargs="*", default=[], help="runs to measure property edits on")
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--amounts", default=DEFAULT_AMOUNTS)
    p.add_argument("--search-steps", type=int, default=150, help="latent search steps (GANs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--figures", type=Path, help="write emoji-vendor-swap.png and emoji-hue-edit.png here")
    p.add_argument("--budget", default="", help="how the runs were trained, for the block's notes")
    p.add_argument("--write-md", type=Path)
    p.add_argument("--block", default="emoji")
    args = p.parse_args()
    if not args.swap and not args.attribute:
        p.error("give --swap and/or --attribute run directories")
    search = FitConfig(steps=args.search_steps, seed=args.seed)
    swaps, edits, figure = [], [], None
    for run in args.swap:
        log(f"vendor swap: {run}")
        rows, fig = vendor_swap(run, args.n, search, args.seed)
        swaps += rows
        figure = figure or fig
    amounts = parse_amounts(args.amounts)
    for run in args.attribute:
        log(f"property edits: {run}")
        edits += property_edits(run, args.n, amounts, search, args.seed)
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
        if figure:
            swap_figure(figure, args.figures / "emoji-vendor-swap.png")
        if args.attribute:
            hue_figure(args.attribute[0], search, args.seed, args.figures / "emoji-hue-edit.png")
    block = markdown(swaps, edits, args.n, args.budget, args.block)
    print(block)
    if args.write_md:
        write_block(args.write_md, block, MD_START.format(args.block), MD_END.format(args.block))


if __name__ == "__main__":
    main()
