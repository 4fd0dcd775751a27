"""Inpainting settings side by side on one run: which latent search fills holes best.

    python bench/trials/inpaint_trial.py RUN_DIR [--n 1000] [--device cpu] \
        --variant default= --variant candidates=64 --variant "candidates=64,average=3"

Each variant is a comma-separated list of FitConfig fields (steps, restarts, candidates, lr, ...)
plus `average=K`: the fill is the mean of K searches with different seeds (inpaint's `samples`),
an estimate of the posterior mean, which is what masked MSE rewards, and `prior=fitted|normal`:
an autoencoder searched under its run's fitted latent prior (the default) or N(0, I);
`label=found` leaves a conditional model's class to the search (`label=found-without-guesses`:
without the encoder's guess under each class among its starts, as before 2026-11-28);
`neighbours=K`: the codes of the K training images nearest on the known pixels join the
search's guesses (`guess_starts=M` of them, with the encoder's, take starts; a GAN's through
the hybrid encoder, `--hybrid`); `default=` is today's FitConfig. Every variant fills the same n test images under the edit bench's two masks (centre
14x14, random half); the mean-image and nearest-neighbour fills are measured once beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import genforge
from genforge.edit import Editor, FitConfig, as_float, centre_mask, random_half_masks, read_images
from genforge.cli.train import parse_overrides
from genforge.edit.fit import fit_latents
from genforge.edit.inpaint import composite, inpaint
from genforge.edit.invert import generate

# The suite's shared code (common.py) and scripts live one folder up, in bench/.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edit_bench import fill_scores


def parse_variant(text: str) -> tuple[FitConfig, int, bool, str, int]:
    settings = parse_overrides([item for item in text.removeprefix("default=").split(",") if item])
    average = int(settings.pop("average", 1))
    neighbours = int(settings.pop("neighbours", 0))
    prior = str(settings.pop("prior", "fitted"))
    label = str(settings.pop("label", "given"))
    if prior not in ("fitted", "normal"):
        raise SystemExit(f"variant {text!r}: prior is fitted or normal")
    if label not in ("given", "found", "found-without-guesses"):
        raise SystemExit(f"variant {text!r}: label is given, found or found-without-guesses")
    try:
        return FitConfig(**settings), average, prior == "fitted", label, neighbours
    except TypeError as e:
        raise SystemExit(f"variant {text!r}: {e}") from None


def fill_without_class_guesses(model, x, mask, fit, prior):
    """A conditional autoencoder's label-found fill as it was before the encoder's guess under each
    class joined the search's starts (screened random starts alone), for comparison."""
    found = fit_latents(model, x, None, known=1 - mask, config=fit, prior=prior)
    return composite(x, generate(model, found.z, found.labels), mask.expand(len(x), *mask.shape[1:]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--variant", action="append", default=[], help="FIELD=VALUE,... (repeatable)")
    p.add_argument("--json", type=Path, help="write the results here too")
    p.add_argument("--hybrid", action="store_true", help="a GAN's inversion encoder reads the neighbours' codes")
    args = p.parse_args()
    model = genforge.load(args.run_dir, device=args.device)
    editor = Editor(model, seed=args.seed, hybrid=args.hybrid)
    dataset = model.run_config["data"]["dataset"]
    test = read_images(f"{dataset}:test", editor.image_shape)
    generator = torch.Generator().manual_seed(args.seed)
    chosen = test.subset(torch.randperm(len(test), generator=generator)[:args.n])
    x, labels = as_float(chosen), chosen.labels
    cond = labels if editor.model.is_conditional else None
    size = editor.image_shape[1]
    masks = {"centre": centre_mask(size, size // 2), "half": random_half_masks(args.n, size, generator)}
    results = {"run": str(args.run_dir), "n": args.n, "device": args.device, "rows": []}
    train = (editor.train_pixels, editor.train.labels)
    for name, mask in masks.items():
        for base, filled in editor.baselines(x, mask).items():
            results["rows"].append({"mask": name, "fill": base, **fill_scores(editor, x, labels, mask, filled)})
        for text in args.variant or ["default="]:
            fit, average, fitted_prior, label, neighbours = parse_variant(text)
            prior = editor.search_prior if fitted_prior else None
            start = time.perf_counter()
            if label == "found-without-guesses":
                filled = fill_without_class_guesses(editor.model, x, mask, fit, prior)
            else:
                filled = inpaint(editor.model, x, mask, cond if label == "given" else None, fit=fit,
                                 samples=average, prior=prior, neighbours=neighbours, train=train,
                                 encoder=editor.encoder if neighbours else None)
            seconds = (time.perf_counter() - start) / args.n
            results["rows"].append({"mask": name, "fill": text, "seconds_per_image": seconds,
                                    **fill_scores(editor, x, labels, mask, filled)})
            print(results["rows"][-1], flush=True)
    print(f"\n{args.run_dir} ({args.n} test images, {args.device})")
    print("| mask | fill | masked MSE | accuracy |\n|---|---|---:|---:|")
    for r in results["rows"]:
        print(f"| {r['mask']} | {r['fill']} | {r['masked_mse']:.4f} | {r['accuracy']:.1%} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
