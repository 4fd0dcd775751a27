"""`genforge sample RUN_DIR --n N --out PATH`: write images from a trained model."""

from __future__ import annotations

from .. import api
from ..imageio import check_images_path, save_images
from ..priors import PRIORS

PRIOR_CHOICES = ["auto", "none", *PRIORS]


def add_parser(sub) -> None:
    from . import device_name, positive_float, positive_int
    p = sub.add_parser("sample", help="write images from a trained model", description=(
        "Write N images: a folder of PNG files, or, when PATH ends in .npz, one uint8 array 'images' "
        "of shape (N, H, W, C); with --grid, one PNG tiling them. The same seed gives the same images."))
    p.add_argument("run_dir")
    p.add_argument("--n", type=positive_int, default=64, help="number of images (default 64)")
    p.add_argument("--out", required=True, help="a folder (a path without a suffix), file.npz, or file.png with "
                   "--grid; any other suffix is refused")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--label", type=int, help="class to draw (conditional models)")
    p.add_argument("--grid", action="store_true", help="write one grid picture")
    p.add_argument("--prior", choices=PRIOR_CHOICES, default="auto", help="where z comes from: auto (the run's "
                   "fitted prior if it has one, else the standard normal; default), none (the standard normal), "
                   "or a fitted prior by name")
    p.add_argument("--temperature", type=positive_float, default=1.0, help="spread of z: above 1 "
                   "wider (more varied, less precise images), below 1 narrower (default 1)")
    p.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda or cuda:N")
    p.set_defaults(run=run)


def run(args) -> int:
    check_images_path(args.out, args.grid, "--out")  # before any work: a path it cannot write is one line
    model = api.load(args.run_dir, args.device)
    images = model.sample(args.n, seed=args.seed, labels=args.label, prior=args.prior, temperature=args.temperature)
    path = save_images(images, args.out, grid=args.grid)
    print(f"wrote {args.n} images to {path}")
    return 0
