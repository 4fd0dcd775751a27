"""`genforge verify IMAGE... [--json] [--watermark MARK_DIR [--watermark-key HEX]]`: read the signed
provenance manifest of images, and with --watermark the key in their pixels.

Each image gets one verdict: signed (by key K, this machine's or not, made by model M with
operation O), broken (the pixels or the manifest changed after signing) or none (no manifest:
the origin is unknown, which is never evidence that an image is authentic). The watermark is the
layer that survives a re-encode: with --watermark each image also gets the key its pixels carry
and the p-value of that reading (provenance/watermark/read.py). The exit status is 0
whenever every image was checked, whatever the verdicts; a missing or unreadable file is one
line and exit status 2, before anything is printed.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ProvenanceError


def add_parser(sub) -> None:
    p = sub.add_parser("verify", help="check the signed provenance manifest of images", description=(
        "For each image (a file, or a folder of them): signed by key K (and whether K is this machine's key), "
        "made by model M with operation O; broken: the pixels or the manifest changed after signing; or none: "
        "no manifest, so the origin is unknown (never called authentic). Exit status 0 when every image was "
        "checked, whatever the verdicts."))
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of them")
    p.add_argument("--json", action="store_true", help="print the verdicts as JSON instead of lines")
    p.add_argument("--watermark", metavar="MARK_DIR", help="also read the watermark of this directory (genforge "
                   "watermark train) in each image's pixels: the key found and its p-value, called marked at a "
                   "false-positive rate of 1e-6")
    p.add_argument("--watermark-key", metavar="HEX", help="the key to test for (default: the watermark's own)")
    p.set_defaults(run=run)


def image_files(target: str) -> list[tuple[str, Path]]:
    """(name, path) of the image files `target` names: the file, or a folder's image files (sorted,
    hidden ones skipped)."""
    from PIL import Image
    path = Path(target).expanduser()
    if path.is_dir():
        extensions = set(Image.registered_extensions())
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise ProvenanceError(f"{path}: no image files in this folder")
        return [(str(f), f) for f in files]
    if not path.exists():
        raise ProvenanceError(f"{target}: no such file or folder")
    return [(target, path)]


def run(args) -> int:
    from ..provenance.verify import describe, own_keys, verify_file
    from ..provenance.watermark import describe as describe_mark
    if args.watermark_key and not args.watermark:
        raise ProvenanceError("--watermark-key tests a key in the pixels: give the watermark too (--watermark DIR)")
    own = own_keys()
    files = [item for target in args.images for item in image_files(target)]
    results = [{"image": name, **verify_file(path, own)} for name, path in files]  # all read before any output
    if args.watermark:
        from ..provenance.watermark import read_files
        for r, mark in zip(results, read_files([path for _, path in files], args.watermark, args.watermark_key)):
            r["watermark"] = mark
    if args.json:
        print(json.dumps({"images": results}, indent=2))
        return 0
    width = max(len(r["image"]) for r in results)
    for r in results:
        print(f"{r['status']:7s} {r['image']:{width}s}  {describe(r)}"
              + (f"; {describe_mark(r['watermark'])}" if "watermark" in r else ""))
    counts = {status: sum(r["status"] == status for r in results) for status in ("signed", "broken", "none")}
    print(f"{len(results)} checked: {counts['signed']} signed, {counts['broken']} broken, "
          f"{counts['none']} without a manifest (unknown origin)")
    if args.watermark:
        marked = sum(bool(r["watermark"].get("marked")) for r in results)
        print(f"watermark {args.watermark}: {marked} of {len(results)} carry its key at a false-positive rate of 1e-6")
    return 0
