"""How often `genforge detect` calls an image soft (looks blurred or resized), per source and
perturbation: the flag has to catch blur and resampling, the perturbations the detector is weak
under, and leave clean, JPEG'd and noisy images alone.

    python bench/softness_bench.py [--real mnist] [--runs RUN_DIR...] [--edits NAME=FILE.npz ...]
                                   [--n 1000] [--write-md BENCHMARKS.md]

The floor is set as `genforge detect train` sets it (`genforge.detect.softness`: the sharpness
only 1% of the real training images fall below), on the whole training split; the shares are
measured on real test images, and on the test fakes of the detection benchmark (samples and
pastes of each run, outside edits), clean and after each of its perturbations. No detector is
trained: the flag depends on the images alone.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from genforge.data import load_dataset
from genforge.detect.augment import PERTURBATIONS, quantise
from genforge.detect.softness import SOFT_QUANTILE, is_soft, sharpness_floor

from common import block_header, write_block
from detect_bench import held_out_fakes


def shares(images: torch.Tensor, floor: float) -> dict[str, float]:
    """Share of the images flagged soft, clean and after each perturbation."""
    out = {"none": is_soft(images, floor).float().mean().item()}
    for name, perturb in PERTURBATIONS.items():
        out[name] = is_soft(quantise(perturb(images)), floor).float().mean().item()
    return out


def run_bench(args) -> dict:
    train, test = load_dataset(args.real, "train"), load_dataset(args.real, "test")
    floor = sharpness_floor(train.images.float() / 255)
    rows = {"real (test)": shares(test.images[:args.n].float() / 255, floor)}
    if args.runs or args.edits:
        fakes = held_out_fakes([Path(r) for r in args.runs], test, args.n, args.edits)
        for name in fakes.names:
            rows[name] = shares(fakes.of(name).images, floor)
    return {"real": args.real, "floor": floor, "n": args.n, "rows": rows}


def markdown(result: dict) -> tuple[str, str, str]:
    start, end = (f"<!-- softness:{result['real']}:{tag} -->" for tag in ("start", "end"))
    lines = block_header(start, f"Softness flag ({result['real']}): share of images `genforge detect` calls blurred "
                         "or resized",
                         f"floor: sharpness {result['floor']:.3f}, the {SOFT_QUANTILE:.0%} quantile of the "
                         f"{result['real']} training split; {result['n']} test images per source (fakes as in "
                         "the detection benchmark)")
    perturbations = ["none", *PERTURBATIONS]
    lines += ["| source | " + " | ".join("clean" if p == "none" else p for p in perturbations) + " |",
              "|---|" + "---:|" * len(perturbations)]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row[p]:.3f}" for p in perturbations) + " |")
    return "\n".join(lines + [end]) + "\n", start, end


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--real", default="mnist")
    p.add_argument("--runs", nargs="*", default=[], help="run directories whose samples and pastes to measure")
    p.add_argument("--edits", nargs="*", default=[], metavar="NAME=FILE.npz", help="outside edits to measure")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--write-md", help="update this markdown file's softness block")
    args = p.parse_args()
    result = run_bench(args)
    print(json.dumps(result, indent=2))
    if args.write_md:
        block, start, end = markdown(result)
        write_block(Path(args.write_md), block, start, end)
        print(f"wrote {args.write_md}")


if __name__ == "__main__":
    main()
