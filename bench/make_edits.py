"""Edited real images with their masks, for the detection benchmark's held-out edit sources.

    python bench/make_edits.py RUN_DIR --op inpaint|attribute [--images mnist:test:5000-5499]
                               --out FILE.npz

Writes `images` (N, H, W, C) uint8 and `masks` (N, H, W) uint8 with 1 where the edit changed
the image: for inpainting, a centre box or a random half, filled by latent search and blended
into its border (the most realistic setting); for attribute edits, the whole image (it is
decoded anew). `bench/detect_bench.py --edits NAME=FILE.npz` tests detectors on them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import genforge
from genforge.detect.fakes import changed_pixels
from genforge.edit import Editor, as_float, centre_mask, random_half_masks, read_images


def inpainted(editor: Editor, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
    size = x.shape[-1]
    masks = random_half_masks(len(x), size, generator)
    boxes = torch.rand(len(x), generator=generator) < 0.5  # half the images get the centre box instead
    masks[boxes] = centre_mask(size, size // 2)
    filled = editor.inpaint(x, masks, labels if editor.model.is_conditional else None, blend=1.0)
    return filled, changed_pixels(filled, x)[:, 0] > 0  # blending reaches just past the mask


def attribute_edited(editor: Editor, x: torch.Tensor, labels: torch.Tensor, generator: torch.Generator):
    targets = (labels + torch.randint(1, 10, labels.shape, generator=generator)) % 10
    edited = torch.empty_like(x)
    for k in range(10):
        idx = (targets == k).nonzero().flatten()
        if len(idx):
            # the attribute vector, as in the edits the detection benchmark was measured on
            edited[idx] = editor.attribute(x[idx], k, labels[idx], strength=1.5, method="vector")
    return edited, torch.ones(len(x), *x.shape[2:], dtype=torch.bool)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--op", choices=("inpaint", "attribute"), required=True)
    p.add_argument("--images", default="mnist:test:5000-5499", help="the real images to edit")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    editor = Editor(genforge.load(args.run_dir), progress=True, seed=args.seed)
    images = read_images(args.images, editor.image_shape)
    generator = torch.Generator().manual_seed(args.seed)
    make = inpainted if args.op == "inpaint" else attribute_edited
    edited, masks = make(editor, as_float(images), images.labels, generator)
    pixels = (edited.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, images=pixels, masks=masks.numpy().astype(np.uint8))
    print(f"wrote {len(pixels)} {args.op} edits of {args.images} to {args.out}")


if __name__ == "__main__":
    main()
