"""`genforge edit RUN_DIR --input IMAGES --op OP --out PATH`: edit real images through a model."""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ..edit.operations import OPS, PATH_OPS
from ..errors import GenforgeError
from ..output_paths import FOLDER
from .sample import add_watermark_flags, check_signing, watermark_for

ROW = 16  # images per row of a comparison picture


def add_parser(sub) -> None:
    from ..edit.pipeline import ATTRIBUTE_STRENGTH
    from ..edit.swap_class import TRANSPORT_STRENGTH
    from . import device_name, finite_float, non_negative_float, positive_float, positive_int
    p = sub.add_parser("edit", help="edit real images through a model's latent space", description=(
        "Bring images into the model's latent space (encoder, or latent search for a GAN), change the code, "
        "and decode. --input: a PNG/JPEG file, a folder of them, an .npz with an array 'images', or a data "
        "set slice such as mnist:test:0-15. --out: a .png picture (originals above results), a .gif "
        "(interpolate, directions), a folder of PNGs or an .npz of the results."))
    p.add_argument("run_dir")
    p.add_argument("--input", required=True, help="image file, folder, .npz, or DATASET:SPLIT:FIRST-LAST")
    p.add_argument("--op", required=True, choices=OPS)
    p.add_argument("--out", required=True, help="file.png, a folder (a path without a suffix) or file.npz; "
                   "interpolate/directions: file.png or file.gif; any other suffix is refused")
    p.add_argument("--from", dest="source", type=int, help="attribute/swap-class: the source class "
                   "(default: the input's labels, or what the classifier reads)")
    p.add_argument("--to", dest="target", help="attribute: a class (number or name), a property to move along "
                   "(thickness, slant, saturation, brightness, area), or PROPERTY=AMOUNT to change it by that much "
                   "(hue=+0.2: fractions of the colour circle; saturation, brightness, area, thickness, slant: their "
                   "own scale, e.g. area=-0.3); swap-class: a class number or name (twitter, for a vendor-conditioned "
                   "emoji run)")
    p.add_argument("--label-only", action="store_true", help="swap-class with a conditional autoencoder: change "
                   "the label alone, without also moving the code from the source class's codes to the target's")
    p.add_argument("--strength", type=finite_float, help=f"attribute: multiple of the move (default {ATTRIBUTE_STRENGTH:g}; "
                   "negative reverses a property); swap-class with a conditional autoencoder: multiple of the code's "
                   f"move from the source class to the target (default {TRANSPORT_STRENGTH:g})")
    p.add_argument("--steps", type=positive_int, default=8, help="interpolate/directions: images per path")
    p.add_argument("--method", default=None, help="interpolate: slerp (default) or lerp; "
                   "directions: sefa (default for GANs) or pca (of the inputs' codes); attribute to a class: "
                   "transport (default for autoencoders: the optimal-transport map between the two classes' "
                   "codes) or vector (default for GANs: the difference of their mean codes)")
    p.add_argument("--format", choices=("strip", "grid", "gif"), default="strip",
                   help="interpolate/directions: one row per path (strip), a square grid, or an animated GIF")
    p.add_argument("--mask", help="inpaint: PNG of the image's size, white = missing")
    p.add_argument("--box", help="inpaint: missing box x0,y0,x1,y1 in pixels")
    p.add_argument("--blend", type=non_negative_float, default=0.0, help="inpaint: feather the fill into the border "
                   "(Gaussian sigma in pixels; 0 changes only masked pixels)")
    p.add_argument("--samples", type=positive_int, default=1, help="inpaint: average this many completions "
                   "(softer fill, lower error where the hole leaves the content open; K times the time)")
    p.add_argument("--neighbours", type=positive_int, help="inpaint: also start the search from the codes of the "
                   "K training images nearest on the known pixels (autoencoders, or GANs with --hybrid; 8 is a "
                   "good start: BENCHMARKS.md)")
    p.add_argument("--num-directions", type=positive_int, default=5)
    p.add_argument("--span", type=positive_float, default=3.0, help="directions: walk +-span standard deviations")
    p.add_argument("--search-steps", type=positive_int, default=150, help="latent search: Adam steps")
    p.add_argument("--restarts", type=positive_int, default=3, help="latent search: random starts per image")
    p.add_argument("--candidates", type=positive_int, help="latent search: random codes scored per image, the "
                   "best --restarts of them start the search (default 64)")
    p.add_argument("--search-prior", choices=("fitted", "normal"), default="fitted",
                   help="inpaint, autoencoders: search under the run's fitted latent prior where it has a "
                   "density (a GMM; default), or under N(0, I)")
    p.add_argument("--hybrid", action="store_true", help="GANs: start latent search from a learned inversion "
                   "encoder (trained on the model's own samples at first use, then kept in the run directory)")
    p.add_argument("--detector", metavar="DET_DIR", help="judge the realism of inputs and results with this "
                   "detector (`genforge detect train`) rather than the model's discriminator")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", type=device_name, default="cpu",
                   help="run the model and its latent search on cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--report", action="store_true", help="also add the --out picture (a .png) and this "
                   "summary to the run's report (copied into RUN_DIR/edits/; the same op again replaces it)")
    p.add_argument("--no-sign", action="store_true", help="write the PNGs without a signed provenance manifest "
                   "(signed by default with this machine's key: genforge keys, genforge verify)")
    p.add_argument("--c2pa", action="store_true", help="also add C2PA content credentials, signed by a certificate "
                   "chain made on this machine (needs pip install 'genforge[c2pa]'; about 3 KB per PNG)")
    add_watermark_flags(p, "edited image (the results, not the inputs shown beside them)")
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import api
    from ..detect import load_detector
    from ..edit import Editor, FitConfig, read_images
    from ..edit.operations import run_edit_request
    if args.report and Path(args.out).suffix.lower() != ".png":
        raise GenforgeError(f"--report adds the edit's picture to the run's report: give --out FILE.png, "
                            f"not {args.out}")
    kind = check_out(args)
    check_signing(args, kind in (".png", FOLDER))
    detector = load_detector(args.detector, args.device)[0] if args.detector else None
    search = FitConfig(steps=args.search_steps, restarts=args.restarts, seed=args.seed)
    if args.candidates is not None:
        search.candidates = args.candidates
    model = api.load(args.run_dir, args.device)
    mark = watermark_for(args, model.image_shape)
    editor = Editor(model, search,
                    progress=not args.no_progress, seed=args.seed, hybrid=args.hybrid, detector=detector,
                    fitted_prior=args.search_prior == "fitted", neighbours=args.neighbours or 0)
    # labels of the run's kind: a vendor-conditioned run's are the vendors (data/labelling.py)
    images = editor.labelled(read_images(args.input, editor.image_shape, background=editor.data.get("background")))
    signer = None  # made before the edit: a key that cannot be made stops it before the work
    if not args.no_sign and kind in (".png", FOLDER):  # a .gif or an .npz has no place for a manifest
        from ..provenance import signer_for
        signer = signer_for(model, f"edit:{args.op}", {**edit_parameters(args), "watermark": mark is not None},
                            inputs=images.images, c2pa=args.c2pa)
    outcome = run_edit_request(editor, images, edit_request(args))
    if mark is not None:  # after the classifier's and the detector's readings, which saw the unmarked results
        if outcome.results is not None:
            outcome.results = mark(outcome.results)
        if outcome.frames is not None:
            outcome.frames = mark(outcome.frames.flatten(0, 1)).view_as(outcome.frames)
    summary = outcome.summary(write_outcome(args, outcome, signer))
    print(summary)
    if args.report:
        from ..report.records import add_edit
        out = re.escape(str(Path(args.out)))  # the caption sits under the picture: no need to say where it went
        caption = re.sub(out, "the picture above", re.sub(rf"; wrote {out}", "", summary))
        add_edit(args.run_dir, args.out, f"{args.op} of {args.input}", f"{LAYOUT.get(args.op, '')} {caption}.")
        print(f"added to {Path(args.run_dir) / 'report.md'}")
    return 0


# how each op's .png picture is laid out, for its caption in the run's report
LAYOUT = {"reconstruct": "Top: the inputs; below: their reconstructions.",
          "attribute": "Top: the inputs; below: the edited images.",
          "swap-class": "Top: the inputs; below: the same images turned into the target class.",
          "inpaint": "Top: the inputs; middle: with the region removed (gray); bottom: the model's completion. "
                     "Baselines: mean fill (the training images' mean), nearest (the training image nearest on "
                     "the known pixels).",
          "interpolate": "One row per pair of inputs, from the first image to the second.",
          "directions": "One row per latent direction, walked from one side to the other."}


def edit_request(args):
    """The op and its settings as the library takes them (edit/operations.py)."""
    from ..edit.operations import EditRequest
    return EditRequest(args.op, target=args.target, source=args.source, label_only=args.label_only,
                       strength=args.strength, steps=args.steps, method=args.method, mask=args.mask, box=args.box,
                       blend=args.blend, samples=args.samples, num_directions=args.num_directions, span=args.span)


def edit_parameters(args) -> dict:
    """The settings a signed manifest records: the op's and the latent search's (no paths: a mask
    file is recorded as given, not by name)."""
    request = vars(edit_request(args))
    request.pop("cli", None)
    request["mask"] = request["mask"] is not None
    return {**request, "format": args.format, "search_steps": args.search_steps, "restarts": args.restarts,
            "candidates": args.candidates, "search_prior": args.search_prior, "hybrid": args.hybrid,
            "neighbours": args.neighbours, "seed": args.seed}


def write_outcome(args, outcome, signer=None) -> Path:
    """The results where --out asks: paths as a strip, grid or GIF; else inputs above results.
    With a `signer` (genforge.provenance.Signer) each PNG carries its signed manifest."""
    if outcome.frames is not None:
        return _write_paths(args.out, outcome.frames, args.format, signer)
    return _write_results(args.out, outcome.inputs, outcome.results, middle=outcome.middle, signer=signer)


# --- helpers ------------------------------------------------------------------------------


def check_out(args) -> str:
    """The kind of --out (output_paths.py), checked before any work: a picture (.png) or a folder or
    .npz of the results; for the ops that walk paths, a .png or a .gif (--format gif needs one)."""
    from ..output_paths import FOLDER, check_output
    if args.op not in PATH_OPS:
        return check_output(args.out, (".png", FOLDER, ".npz"), "--out")
    kind = check_output(args.out, (".png", ".gif"), "--out", hint=f"{args.op} writes a picture or an animation")
    if args.format == "gif" and kind != ".gif":
        raise GenforgeError(f"--out {args.out}: --format gif writes an animation; give --out FILE.gif")
    return kind


def _write_results(out: str, x: torch.Tensor, results: torch.Tensor, middle: torch.Tensor | None = None,
                   signer=None) -> Path:
    """A .png shows inputs above results (and a middle row, e.g. the masked input), ROW per block;
    any other path gets the results alone (a folder of PNGs, each naming its own input when
    signed, or an .npz)."""
    from ..imageio import save_images
    from ..report.grid import make_grid, save_png
    if Path(out).suffix.lower() != ".png":
        return save_images(results, out, signer=signer)
    rows = [x] + ([middle] if middle is not None else []) + [results]
    blocks = [torch.cat([r[i:i + ROW] for r in rows]) for i in range(0, len(x), ROW)]
    return save_png(make_grid(torch.cat(blocks), nrow=min(ROW, len(x)), scale=2), out, signer)


def _write_paths(out: str, frames: torch.Tensor, fmt: str, signer=None) -> Path:
    """frames (steps, P, C, H, W): P paths as rows of a strip, a square grid, or a GIF."""
    from ..edit.gif import save_gif
    from ..report.grid import make_grid, save_png
    steps, paths = frames.shape[:2]
    if fmt == "gif" or Path(out).suffix.lower() == ".gif":
        return save_gif(frames, out)
    if Path(out).suffix.lower() != ".png":
        raise GenforgeError(f"--out {out}: write paths to a .png (strip or grid) or a .gif")
    by_path = frames.transpose(0, 1).flatten(0, 1)
    return save_png(make_grid(by_path, nrow=steps if fmt == "strip" else None, scale=2), out, signer)
