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
    p.add_argument("--no-sign", action="store_true", help="write the PNGs without a signed provenance manifest "
                   "(signed by default with this machine's key: genforge keys, genforge verify)")
    p.add_argument("--c2pa", action="store_true", help="also add C2PA content credentials, signed by a certificate "
                   "chain made on this machine (needs pip install 'genforge[c2pa]'; about 3 KB per PNG)")
    add_watermark_flags(p, "sampled image")
    p.set_defaults(run=run)


def add_watermark_flags(p, what: str) -> None:
    p.add_argument("--watermark", metavar="MARK_DIR", help=f"embed this watermark's key (genforge watermark train) in "
                   f"the pixels of each {what}: the mark that survives a re-encode, read by genforge verify "
                   "--watermark")
    p.add_argument("--watermark-key", metavar="HEX", help="the key to embed (default: the watermark's own)")


def run(args) -> int:
    kind = check_images_path(args.out, args.grid, "--out")  # before any work: a path it cannot write is one line
    check_signing(args, kind != ".npz")
    model = api.load(args.run_dir, args.device)
    mark = watermark_for(args, model.image_shape)
    signer = None
    if not args.no_sign and kind != ".npz":  # an .npz has no place for a manifest
        from ..provenance import signer_for
        prior = model.prior_kind if args.prior == "auto" else args.prior  # the prior actually drawn from
        signer = signer_for(model, "sample", {"n": args.n, "seed": args.seed, "label": args.label, "prior": prior,
                                              "temperature": args.temperature, "grid": args.grid,
                                              "watermark": mark is not None}, c2pa=args.c2pa)
    images = model.sample(args.n, seed=args.seed, labels=args.label, prior=args.prior, temperature=args.temperature)
    if mark is not None:
        images = mark(images)
    path = save_images(images, args.out, grid=args.grid, signer=signer)
    print(f"wrote {args.n} images to {path}")
    return 0


def watermark_for(args, image_shape: tuple[int, int, int]):
    """With --watermark: a function marking (N, C, H, W) images in [0, 1] with the key; the
    watermark, its size and the key checked before any work. None without --watermark."""
    from ..errors import GenforgeError
    if args.watermark_key and not args.watermark:
        raise GenforgeError("--watermark-key is the key to embed: give the watermark too (--watermark DIR)")
    if not args.watermark:
        return None
    from ..provenance.watermark import Marker
    marker = Marker(args.watermark, args.watermark_key)
    if not marker.fits(image_shape):
        raise GenforgeError(f"--watermark {args.watermark} marks {'x'.join(map(str, marker.mark.image_shape))} images "
                            f"(channels x height x width); this model makes {'x'.join(map(str, image_shape))}")
    return marker.images


def check_signing(args, writes_png: bool) -> None:
    """--c2pa adds to the signed manifest of PNGs: refused with --no-sign, for output with no PNG,
    or without c2pa-python; checked before any work."""
    from ..errors import GenforgeError
    if args.c2pa and args.no_sign:
        raise GenforgeError("--c2pa adds C2PA credentials to the signed PNGs: drop --no-sign to use it")
    if args.c2pa and not writes_png:
        raise GenforgeError(f"--c2pa signs PNG files; --out {args.out} writes none")
    if args.c2pa:
        from ..provenance.credentials import require
        require()
