"""`genforge edit RUN_DIR --input IMAGES --op OP --out PATH`: edit real images through a model."""

from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from ..errors import GenforgeError

OPS = ("reconstruct", "interpolate", "attribute", "swap-class", "inpaint", "directions")
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
    p.set_defaults(run=run)


def run(args) -> int:
    from .. import api
    from ..detect import load_detector
    from ..edit import Editor, FitConfig, as_float, read_images
    if args.report and Path(args.out).suffix.lower() != ".png":
        raise GenforgeError(f"--report adds the edit's picture to the run's report: give --out FILE.png, "
                            f"not {args.out}")
    check_out(args)
    detector = load_detector(args.detector, args.device)[0] if args.detector else None
    search = FitConfig(steps=args.search_steps, restarts=args.restarts, seed=args.seed)
    if args.candidates is not None:
        search.candidates = args.candidates
    editor = Editor(api.load(args.run_dir, args.device), search,
                    progress=not args.no_progress, seed=args.seed, hybrid=args.hybrid, detector=detector,
                    fitted_prior=args.search_prior == "fitted", neighbours=args.neighbours or 0)
    # labels of the run's kind: a vendor-conditioned run's are the vendors (data/labelling.py)
    images = editor.labelled(read_images(args.input, editor.image_shape, background=editor.data.get("background")))
    summary = OPERATIONS[args.op](editor, images, as_float(images), args)
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


def reconstruct(editor, images, x, args) -> str:
    from ..edit import reconstruction_quality
    labels = _labels_if_conditional(editor, images)
    out = editor.reconstruct(x, labels)
    q = reconstruction_quality(x, out, editor.feature_net)
    agreement = f", classifier agreement {q['agreement']:.0%}" if "agreement" in q else ""
    return (f"reconstructed {len(x)} image(s) into {_write_results(args.out, x, out)}: MSE {q['mse']:.4f}, "
            f"PSNR {q['psnr']:.1f} dB, SSIM {q['ssim']:.3f}{agreement}; {_realism(editor, x, out, labels)}")


def interpolate(editor, images, x, args) -> str:
    if len(x) < 2:
        raise GenforgeError("interpolate needs at least 2 images: it goes from image 0 to 1, 2 to 3, ...")
    pairs = len(x) // 2
    labels = _labels_if_conditional(editor, images)
    l0, l1 = (None, None) if labels is None else (labels[0:2 * pairs:2], labels[1:2 * pairs:2])
    frames = editor.interpolate(x[0:2 * pairs:2], x[1:2 * pairs:2], args.steps, args.method or "slerp", l0, l1)
    path = _write_paths(args.out, frames, args.format)
    return f"wrote {pairs} interpolation(s) of {args.steps} steps ({args.method or 'slerp'}) to {path}"


def attribute(editor, images, x, args) -> str:
    from ..edit.attribute import PROPERTIES
    from ..edit.pipeline import ATTRIBUTE_STRENGTH
    target = _target(args)
    strength = ATTRIBUTE_STRENGTH if args.strength is None else args.strength
    if isinstance(target, tuple):  # PROPERTY=AMOUNT: calibrated (edit/calibrate.py)
        return _property_change(editor, images, x, args, *target)
    if isinstance(target, str) and target not in PROPERTIES:
        target = editor.class_index(target)
    if isinstance(target, int):
        # without --from: the input's labels where it has them, else what the classifier reads
        source = images.labels if args.source is None else torch.full((len(x),), args.source)
        out = editor.attribute(x, target, source, strength, args.method or "auto")
        change = _class_change(editor, x, out, target)
    else:
        labels = _labels_if_conditional(editor, images)
        out = editor.attribute(x, target, strength=strength, method=args.method or "auto", labels=labels)
        change = f"moved along {target} by {strength:g}"
        return f"{change}; wrote {_write_results(args.out, x, out)}; {_realism(editor, x, out, labels)}"
    return f"{change}; wrote {_write_results(args.out, x, out)}; {_realism(editor, x, out)}"


def _property_change(editor, images, x, args, name: str, amount: float) -> str:
    if args.strength is not None:
        raise GenforgeError(f"--to {args.target} asks for an amount of {name}; --strength is for a move without one")
    labels = _labels_if_conditional(editor, images)
    edit = editor.change_property(x, name, amount, labels)
    got = edit.achieved
    held = ", ".join(f"{k} {v.mean():+.3f}" for k, v in edit.drift.items())
    kept = ""
    if editor.feature_net is not None:  # the category (and vendor) read in the edit as in the input
        (c0, s0), (c1, s1) = editor.feature_net.category_and_style(x), editor.feature_net.category_and_style(edit.images)
        kept = f"; classifier reads the same class in {(c0 == c1).float().mean():.0%}"
        if s0 is not None:
            kept += f", the same style in {(s0 == s1).float().mean():.0%}"
    return (f"{name}: asked {amount:+g}, achieved {got.mean():+.3f} (sd {got.std(correction=0):.3f}; the linear "
            f"model's step alone {edit.unit_achieved.mean():+.3f}), measured from the reconstructions; held: {held}"
            f"{kept}; wrote {_write_results(args.out, x, edit.images)}; {_realism(editor, x, edit.images, labels)}")


def swap_class(editor, images, x, args) -> str:
    from ..edit.swap_class import TRANSPORT_STRENGTH
    target = _target(args)
    if isinstance(target, tuple):
        raise GenforgeError(f"swap-class --to takes a class number or name, not {args.target!r}")
    if args.strength is not None and editor.model.is_conditional and not editor.moves_code_on_swap(not args.label_only):
        raise GenforgeError("--strength sets how far a conditional autoencoder's code moves in a class swap; "
                            + ("--label-only moves none" if args.label_only else
                               f"model {editor.model.name!r} keeps its code and changes the label alone"))
    source = torch.full((len(x),), args.source) if args.source is not None else editor.source_labels(images)
    strength = TRANSPORT_STRENGTH if args.strength is None else args.strength
    labels = editor.swap_targets(target, source)  # a name, or per image on a category/vendor run
    out = editor.swap_class(x, source, labels, move_code=not args.label_only, strength=strength)
    target = labels[0].item() if (labels == labels[0]).all() else labels
    return (f"{_class_change(editor, x, out, target)}; wrote {_write_results(args.out, x, out)}; "
            f"{_realism(editor, x, out, source, labels)}")


def inpaint(editor, images, x, args) -> str:
    from ..edit import box_mask, read_mask
    size = editor.image_shape[1]
    if (args.mask is None) == (args.box is None):
        raise GenforgeError("inpaint needs exactly one of --mask PNG or --box x0,y0,x1,y1")
    mask = read_mask(args.mask, size) if args.mask else box_mask(args.box, size)
    # A conditional model completes under the input's labels where it has them; else it searches
    # the class too (the classifier's reading of an image with a hole is a poor guess).
    labels = images.labels if editor.model.is_conditional else None
    out = editor.inpaint(x, mask, labels, args.blend, args.samples)
    name = "model" if args.samples == 1 else f"model (mean of {args.samples})"
    if editor.neighbours:
        name += f", started from {editor.neighbours} training neighbours"
    if editor.search_prior is not None:
        name += f", {editor.search_prior.kind} prior"
    if editor.model.is_conditional and labels is None:
        name += ", class found by the search"
    fills = {name: out, **editor.baselines(x, mask)}
    mse = ", ".join(f"{name} {_masked_mse(fill, x, mask):.4f}" for name, fill in fills.items())
    summary = f"masked MSE: {mse}"
    if images.labels is not None and editor.feature_net is not None:
        acc = ", ".join(f"{name} {(editor.reads(fill) == images.labels).float().mean():.0%}"
                        for name, fill in fills.items())
        summary += f"; classifier accuracy: {acc}"
    path = _write_results(args.out, x, out, middle=x * (1 - mask) + 0.5 * mask)
    return f"{summary}; wrote {path}; {_realism(editor, x, out, labels)}"


def directions(editor, images, x, args) -> str:
    method = args.method or ("sefa" if editor.model.first_layer_weight() is not None else "pca")
    labels = _labels_if_conditional(editor, images)
    dirs, scales = editor.directions(method, args.num_directions, x, labels)
    start = editor.invert(x[:1], None if labels is None else labels[:1])[0]
    walks = editor.traverse(start, dirs, scales if method == "pca" else torch.ones(len(dirs)), args.steps,
                            args.span, None if labels is None else labels[:1])
    path = _write_paths(args.out, walks.transpose(0, 1), args.format)
    what = "standard deviations" if method == "pca" else "eigenvalues"
    return f"wrote {len(dirs)} {method} direction(s) to {path}; {what}: " + ", ".join(f"{v:.3g}" for v in scales)


OPERATIONS = {"reconstruct": reconstruct, "interpolate": interpolate, "attribute": attribute,
              "swap-class": swap_class, "inpaint": inpaint, "directions": directions}


# --- helpers ------------------------------------------------------------------------------
PATH_OPS = ("interpolate", "directions")  # they write paths: a strip or grid .png, or a .gif


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


def _target(args) -> int | str | tuple[str, float]:
    """--to as a class number, a name (a class's or a property's), or (property, amount) for PROPERTY=AMOUNT."""
    if args.target is None:
        properties = ", a property, or PROPERTY=AMOUNT such as hue=+0.2" if args.op == "attribute" else ""
        raise GenforgeError(f"{args.op} needs --to (a class number or name{properties})")
    name, sep, amount = args.target.partition("=")
    if sep and args.op == "attribute":
        from ..edit.calibrate import CALIBRATED
        if name.strip() not in CALIBRATED:
            raise GenforgeError(f"--to {args.target}: an amount can be asked of {', '.join(CALIBRATED)}, "
                                f"not {name.strip()!r}")
        try:
            value = float(amount)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value):
            raise GenforgeError(f"--to {args.target}: the amount must be a finite number, e.g. {name.strip()}=+0.2")
        return name.strip(), value
    return int(args.target) if args.target.lstrip("-").isdigit() else args.target


def _labels_if_conditional(editor, images) -> torch.Tensor | None:
    return editor.source_labels(images) if editor.model.is_conditional else None


def _class_change(editor, x, out, target) -> str:
    """How often the classifier reads the target: one class (a number), or a class per image (N,)."""
    if editor.feature_net is None:
        return "no classifier to read the classes"
    before = (editor.reads(x) == target).float().mean()
    after = (editor.reads(out) == target).float().mean()
    names = editor.class_names
    if isinstance(target, int):
        named = 0 <= target < len(names) and str(names[target]) != str(target)  # digits' names are their numbers
        what = f"class {target}" + (f" ({names[target]})" if named else "")
    else:
        what = "each image's target class"
    return f"classifier reads {what} in {after:.0%} of edited images (before: {before:.0%})"


def _realism(editor, x, out, labels=None, out_labels=None) -> str:
    before, after = editor.realism(x, labels), editor.realism(out, labels if out_labels is None else out_labels)
    if before is None and editor.realism_judge == "discriminator":
        return "realism: unavailable (the conditional discriminator needs labels and there is no classifier)"
    if before is None:
        return (f"realism: unavailable ({editor.model.name} has no discriminator; "
                "give --detector DET_DIR to judge with a detector)")
    return f"{editor.realism_judge} P(real): inputs {before.mean():.2f}, results {after.mean():.2f}"


def _masked_mse(fill, x, mask) -> float:
    mask = mask.expand_as(x)
    return float(((fill - x).pow(2) * mask).sum() / mask.sum())


def _write_results(out: str, x: torch.Tensor, results: torch.Tensor, middle: torch.Tensor | None = None) -> Path:
    """A .png shows inputs above results (and a middle row, e.g. the masked input), ROW per block;
    any other path gets the results alone (a folder of PNGs or an .npz)."""
    from ..imageio import save_images
    from ..report.grid import make_grid, save_png
    if Path(out).suffix.lower() != ".png":
        return save_images(results, out)
    rows = [x] + ([middle] if middle is not None else []) + [results]
    blocks = [torch.cat([r[i:i + ROW] for r in rows]) for i in range(0, len(x), ROW)]
    return save_png(make_grid(torch.cat(blocks), nrow=min(ROW, len(x)), scale=2), out)


def _write_paths(out: str, frames: torch.Tensor, fmt: str) -> Path:
    """frames (steps, P, C, H, W): P paths as rows of a strip, a square grid, or a GIF."""
    from ..edit.gif import save_gif
    from ..report.grid import make_grid, save_png
    steps, paths = frames.shape[:2]
    if fmt == "gif" or Path(out).suffix.lower() == ".gif":
        return save_gif(frames, out)
    if Path(out).suffix.lower() != ".png":
        raise GenforgeError(f"--out {out}: write paths to a .png (strip or grid) or a .gif")
    by_path = frames.transpose(0, 1).flatten(0, 1)
    return save_png(make_grid(by_path, nrow=steps if fmt == "strip" else None, scale=2), out)
