"""`genforge detect`: judge images with a trained detector, or train one.

    genforge detect DET_DIR IMAGE_OR_FOLDER_OR_SLICE... [--json FILE] [--heatmap DIR] [--sheet FILE.png]
                    [--threshold T] [--watermark MARK_DIR [--watermark-key HEX]] [--device D]
    genforge detect train --real DATA --fake RUN_DIR... --out DET_DIR [--steps N | --minutes M] [--device D]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from ..detect.augment import AUGMENTATIONS
from ..detect.fakes import EDIT_TRUTHS
from ..detect.train import DetectTrainConfig
from ..errors import GenforgeError
from ..train.precision import DEFAULT_PRECISION, PRECISIONS

SOFT_NOTE = "soft: blurred or resized? the verdict is weak"
JUDGE_ONLY = ("json", "heatmap", "sheet", "threshold", "watermark", "watermark_key")
TRAIN_ONLY = ("real", "fake", "out", "steps", "minutes", "edit_weight", "edit_truth", "self_blend", "precision",
              "augment")


def add_parser(sub) -> None:
    from . import device_name, positive_float, positive_int, probability
    p = sub.add_parser("detect", help="tell real images from generated or edited ones", description=(
        "genforge detect DET_DIR INPUT...: print, for each image, the probability that it is generated or "
        "edited and the verdict at the detector's threshold; INPUT is an image file, a folder, an .npz "
        "with an array 'images', or a data slice such as mnist:test:0-99. Images of another size or mode "
        "are converted (with a note); unreadable files are reported and the rest still judged (exit "
        "status 1 when some could not be read). "
        "genforge detect train --real DATA --fake RUN_DIR... --out DET_DIR: train a detector of DATA's "
        "real images against samples of, and regions pasted by, the models of the run directories. Grey and "
        "colour images alike: the detector takes the size and mode of the runs, and judges images of its own "
        "mode only."))
    p.add_argument("target", help="DET_DIR, or the word train")
    p.add_argument("inputs", nargs="*", help="images to judge")
    p.add_argument("--json", help="also write the verdicts as JSON to this file")
    p.add_argument("--heatmap", help="write a PNG of each image with its edited regions in red to this folder")
    p.add_argument("--sheet", help="write one PNG of the judged images with their edit maps, the most likely "
                   "generated or edited first (up to 64)")
    p.add_argument("--threshold", type=probability, help="probability above which an image is called generated "
                   "or edited (default: the detector's own)")
    p.add_argument("--watermark", metavar="MARK_DIR", help="also read the watermark of this directory in each "
                   "image's pixels: the key found and its p-value (marked at a false-positive rate of 1e-6)")
    p.add_argument("--watermark-key", metavar="HEX", help="the key to test for (default: the watermark's own)")
    p.add_argument("--device", type=device_name, default="cpu", help="where the detector runs (and trains): "
                   "cpu, cuda or cuda:N")
    train = p.add_argument_group("train")
    train.add_argument("--real", help="real images: a data set or slice, e.g. mnist or mnist:train:0-9999")
    train.add_argument("--fake", nargs="+", metavar="RUN_DIR", help="run directories of the models to detect")
    train.add_argument("--out", help="detector directory to write")
    train.add_argument("--steps", type=positive_int, help="optimisation steps")
    train.add_argument("--minutes", type=positive_float, help="wall-clock minutes of training (10 on 2 cores: "
                       "the edit maps need them; BENCHMARKS.md)")
    train.add_argument("--batch-size", type=positive_int, default=64)
    train.add_argument("--width", type=positive_int, default=16, help="channels of the first layer (default 16)")
    train.add_argument("--fakes-per-source", type=positive_int, default=2000,
                       help="samples and pastes made from each run directory (default 2000 of each)")
    train.add_argument("--edit-weight", type=positive_float,
                       help="weight of the pixels of partly edited images in the edit-map loss (default 10)")
    train.add_argument("--edit-truth", choices=EDIT_TRUTHS, help="what the edit map learns to mark in a "
                       "paste: the pixels it changed (default) or the whole region pasted")
    train.add_argument("--self-blend", action=argparse.BooleanOptionalAction,
                       help="also train on real images with a region pasted from a blurred, resampled, noisier "
                       "or sharpened copy of themselves: edits of no generator in particular (default: "
                       f"{'on' if DetectTrainConfig.self_blend else 'off'})")
    train.add_argument("--augment", metavar="OPS", help="comma list of the perturbations training applies to "
                       f"real and fake images alike, from {', '.join(AUGMENTATIONS)} (default: all; '' for none)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--precision", choices=PRECISIONS, help="fp32, bf16, or auto: bf16 where the hardware "
                       f"runs it fast (CPUs with AMX); default {DEFAULT_PRECISION}")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    training = args.target == "train"
    misplaced = [name for name in (JUDGE_ONLY if training else TRAIN_ONLY) if getattr(args, name) is not None]
    if misplaced:
        mode = "`genforge detect train`" if not training else "judging (`genforge detect DET_DIR INPUT...`)"
        raise GenforgeError(f"--{misplaced[0].replace('_', '-')} belongs to {mode}, not here")
    check_outputs(args)
    return train_command(args) if training else judge(args)


def train_command(args) -> int:
    from .. import api
    from ..detect import train_detector
    from ..detect.train import report
    if args.inputs or not (args.real and args.fake and args.out):
        raise GenforgeError("write genforge detect train --real DATA --fake RUN_DIR... --out DET_DIR")
    if args.steps is None and args.minutes is None:
        raise GenforgeError("give a training budget: --steps N or --minutes M")
    config = DetectTrainConfig(steps=args.steps, minutes=args.minutes, batch_size=args.batch_size,
                               width=args.width, fakes_per_source=args.fakes_per_source, seed=args.seed,
                               edit_weight=args.edit_weight or DetectTrainConfig.edit_weight,
                               edit_truth=args.edit_truth or DetectTrainConfig.edit_truth,
                               self_blend=DetectTrainConfig.self_blend if args.self_blend is None else args.self_blend,
                               precision=args.precision or DetectTrainConfig.precision, device=args.device,
                               augmentations=DetectTrainConfig.augmentations if args.augment is None else args.augment)
    first = api.load(args.fake[0])  # its size and mode are the detector's; the others are checked against them
    channels, size, _ = first.image_shape
    real = real_images(args.real, first, size, channels)
    _, card = train_detector(real, args.fake, args.out, config, real_spec=args.real, progress=not args.no_progress)
    print(report(card))
    print(f"wrote {args.out}")
    return 0


def real_images(spec: str, run, size: int, channels: int):
    """The real images of `spec` at the run's size, in the run's mode only where that is their own
    mode or the run was trained on this very data set converted to it (`genforge train --channels`):
    mnist's grey digits are never coloured to train a detector of colour models, nor emoji greyed
    for grey ones; a detector trained that way would learn the conversion, not the models."""
    from ..data import load_slice, parse_slice
    from ..detect.detector import describe_channels
    real = load_slice(spec, size)
    if real.shape[0] != channels:
        trained_on = run.run_config.get("data", {}).get("dataset")
        if parse_slice(spec)[0] != trained_on:
            raise GenforgeError(f"--real {spec} holds {describe_channels(real.shape[0])} images but the --fake "
                                f"runs make {describe_channels(channels)} images (trained on {trained_on}); "
                                "give real images of the data the runs were trained on")
        real = load_slice(spec, size, channels)
    return real


def judge(args) -> int:
    import torch

    from ..detect import load_detector
    from ..detect.heatmap import overlay
    from ..detect.sheet import contact_sheet
    from ..detect.inputs import read_inputs
    from ..detect.softness import is_soft
    from ..report.grid import save_png
    if not args.inputs:
        raise GenforgeError(f"give images to judge: genforge detect {args.target} IMAGE_OR_FOLDER...")
    if args.watermark_key and not args.watermark:
        raise GenforgeError("--watermark-key tests a key in the pixels: give the watermark too (--watermark DIR)")
    detector, card = load_detector(args.target, args.device)
    mark = None
    if args.watermark:
        from ..provenance.watermark import check_key, load_watermark
        mark = load_watermark(args.watermark)
        if args.watermark_key:
            check_key(args.watermark_key, mark.bits)  # before any work
    threshold = card["threshold"] if args.threshold is None else args.threshold
    trained_on = card.get("training", {}).get("real", "")
    items, sources = [], []
    for target in args.inputs:
        found = read_inputs(target, detector.config.in_channels, detector.config.image_size, trained_on)
        items += found
        sources += [image_file(target, item) for item in found]
    readable = [item for item in items if not item.error]
    provenance = provenance_of([source for item, source in zip(items, sources) if not item.error])
    if len(items) == 1 and items[0].error:
        raise GenforgeError(f"{items[0].name}: {items[0].error}")
    if not readable:
        raise GenforgeError(f"none of the {len(items)} image(s) could be read; "
                            f"first: {items[0].name}: {items[0].error}")
    images = torch.stack([item.image for item in readable])
    probs, maps = detector.predict(images)
    marks = watermarks_of(readable, mark, args.watermark_key) if mark else [None] * len(readable)
    # Cards written before the softness floor existed say nothing about it (None in the JSON).
    floor = card.get("softness", {}).get("sharpness_floor")
    soft = is_soft(images, floor).tolist() if floor is not None else [None] * len(readable)
    verdicts = []
    print(f"probability that the image is generated or edited (verdict at threshold {threshold:g}):")
    for item, p, s, signed, marked in zip(readable, probs.tolist(), soft, provenance, marks):
        verdict = "generated/edited" if p >= threshold else "real"
        verdicts.append({"image": item.name, "probability": p, "verdict": verdict, "soft": s, "note": item.note,
                         "provenance": signed} | ({"watermark": marked} if marked else {}))
        notes = [n for n in (item.note, SOFT_NOTE if s else "", provenance_note(signed),
                             watermark_note(marked)) if n]
        print(f"{p:7.4f}  {verdict:16s}  {item.name}" + (f"  ({'; '.join(notes)})" if notes else ""))
    for item in items:
        if item.error:
            print(f"genforge: {item.name}: {item.error}", file=sys.stderr)
    flagged = sum(v["verdict"] != "real" for v in verdicts)
    print(f"{len(readable)} judged: {flagged} generated/edited, {len(readable) - flagged} real"
          + (f"; {len(items) - len(readable)} unreadable" if len(readable) < len(items) else ""))
    if mark:
        found = sum(bool(m["marked"]) for m in marks)
        print(f"watermark {args.watermark}: {found} of {len(readable)} carry its key at a false-positive rate of 1e-6")
    if any(soft):
        print(f"{sum(map(bool, soft))} look blurred or resized (softer than "
              f"{1 - card['softness']['quantile']:.0%} of the detector's real training images): its verdicts "
              "on such images are weak, down to a coin toss on some pasted regions (BENCHMARKS.md, robustness)")
    if args.heatmap:
        folder = Path(args.heatmap)
        for item, edit_map in zip(readable, maps):
            save_png(overlay(item.original, edit_map), folder / f"{heatmap_stem(item.name)}.png")
        print(f"wrote {len(readable)} heatmaps to {folder}")
    if args.sheet:
        shown = contact_sheet([item.original for item in readable], probs, maps, threshold, args.sheet, soft,
                              [item.name for item in readable])
        print(f"wrote {args.sheet} ({shown} of {len(readable)} images, the most likely generated or edited first)")
    if args.json:
        errors = [{"image": item.name, "error": item.error} for item in items if item.error]
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"detector": args.target, "threshold": threshold,
                                               "images": verdicts, "unreadable": errors}, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 1 if len(readable) < len(items) else 0


def image_file(target: str, item) -> Path | None:
    """The file an input item was read from: the target itself, or a file in the target folder;
    None for an image of an .npz or a data set slice (no file, so no manifest)."""
    path = Path(target).expanduser()
    if path.is_dir():
        return path / item.name
    return path if path.is_file() and path.suffix.lower() != ".npz" else None


def provenance_of(files: list[Path | None]) -> list[dict]:
    """The signed-manifest verdict of each file (provenance/verify.py): signed, broken or none."""
    from ..provenance.verify import own_keys, unsigned, verify_file
    own = own_keys()
    out = []
    for path in files:
        if path is None:
            out.append(unsigned("an image of an array or a data set, not a file: no manifest"))
            continue
        try:
            out.append(verify_file(path, own))
        except GenforgeError as e:  # read by the detector, so this is rare; never stops the judging
            out.append(unsigned(f"the manifest could not be read ({e})"))
    return out


def watermarks_of(items, mark, key: str | None) -> list[dict]:
    """The watermark reading of each image's own pixels as read (not the detector's resized copy):
    provenance/watermark/read.py."""
    from ..provenance.watermark import read_pictures
    from ..provenance.watermark.files import to_tensor
    # grey <-> RGB is converted by the reader as data sets convert it; an image too small to hold
    # a mark gets an error entry and is judged all the same
    return read_pictures([to_tensor(item.original) if item.original is not None else item.image[None]
                          for item in items], mark, key)


def watermark_note(result: dict | None) -> str:
    """"watermark KEY (46/48 bits, p = 1e-12)" for a marked image; nothing otherwise (most images)."""
    if not result or not result["marked"]:
        return ""
    from ..provenance.watermark import describe
    return describe(result)


def provenance_note(result: dict) -> str:
    """A short note for the printed line: who signed the image, or that its signature is broken;
    nothing for an image without a manifest (most images)."""
    if result["status"] == "signed":
        model = result["model"] if isinstance(result["model"], dict) else {}
        own = " (this machine's key)" if result["own"] else ""
        return f"signed by key {result['key']}{own}: {model.get('family', '?')} {result['operation']}"
    if result["status"] == "broken":
        return f"signature broken: {result['reason']}"
    return ""


def check_outputs(args) -> None:
    """Every output path, checked before any work (output_paths.py)."""
    from ..output_paths import FOLDER, check_output
    for flag, path, accepts in (("--json", args.json, (".json",)), ("--heatmap", args.heatmap, (FOLDER,)),
                                ("--sheet", args.sheet, (".png",)), ("--out", args.out, (FOLDER,))):
        if path is not None:
            check_output(path, accepts, flag)


def heatmap_stem(name: str) -> str:
    """A file name for an image's heatmap: "a/b.png" -> "a_b", "x.npz[3]" -> "x.npz_3_",
    "mnist:test:7" -> "mnist_test_7" (only an image file's own extension is dropped)."""
    path = Path(name)
    if path.suffix.lower() in {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}:
        name = str(path.with_suffix(""))
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)
