"""`genforge watermark train|embed|read|finetune`: a learned watermark in the pixels, and keys in models.

- train: an embedder and an extractor for one data set's images, against JPEG, noise, blur,
  resizing and crops; written to a watermark directory;
- embed: image files marked with a key;
- read: the key each image carries and how sure that is (a binomial p-value);
- finetune: a copy of a trained run whose samples carry a key by themselves.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data.folder import resize_square
from ..errors import DataError
from ..output_paths import FOLDER, check_output
from ..provenance.watermark.files import open_picture as _open, read_picture, to_tensor as _tensor

EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}


def add_parser(sub) -> None:
    from . import positive_float, positive_int, probability
    p = sub.add_parser("watermark", help="train, embed and read an invisible watermark; key a model",
                       description="A learned watermark in the pixels of small images (28x28 grey, 32x32 and "
                       "64x64 colour) that survives JPEG, noise, blur, resizing and crops, and keys in models "
                       "themselves. See docs/guide/watermark.md.")
    verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=type(p))

    t = verbs.add_parser("train", help="train an embedder and an extractor for a data set's images")
    t.add_argument("--dataset", required=True, help="the data set whose images it marks (mnist, emoji, ...)")
    t.add_argument("--image-size", type=positive_int, help="resize the data set's images to N x N first")
    t.add_argument("--bits", type=positive_int, help="bits a key holds, a multiple of 4 (default 32 at 28x28, "
                   "48 at larger sizes)")
    t.add_argument("--minutes", type=positive_float, help="training time (default: the settings' own, "
                   "unless --steps is given)")
    t.add_argument("--steps", type=positive_int, help="training steps (with --minutes: whichever ends first)")
    t.add_argument("--out", required=True, help="the watermark directory to write")
    t.add_argument("--key", help="the watermark's own key, used when none is given (default: a random one)")
    t.add_argument("--width", type=positive_int, help="channels of both networks")
    t.add_argument("--strength", type=positive_float, help="the largest change to a pixel, in [0, 1] units")
    t.add_argument("--image-weight", type=positive_float, help="how much a smaller change to the image "
                   "counts against reading the bits")
    t.add_argument("--batch-size", type=positive_int, help="images per step")
    t.add_argument("--lr", type=positive_float, help="learning rate")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--data-dir", help="look here first for the data files")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(run=train)

    e = verbs.add_parser("embed", help="mark image files with a key")
    e.add_argument("images", nargs="+", help="image files or folders of them")
    e.add_argument("--mark", required=True, help="the watermark directory")
    e.add_argument("--key", help="the key to embed, in hex (default: the watermark's own)")
    e.add_argument("--out", required=True, help="a folder for the marked PNGs, or a .png file for one image")
    e.set_defaults(run=embed)

    r = verbs.add_parser("read", help="read the key of images and how sure that is")
    r.add_argument("images", nargs="+", help="image files or folders of them")
    r.add_argument("--mark", required=True, help="the watermark directory")
    r.add_argument("--key", help="the key to test for, in hex (default: the watermark's own)")
    r.add_argument("--fpr", type=probability, default=1e-6, help="the false-positive rate the 'marked' "
                   "verdict is held to (default 1e-6)")
    r.add_argument("--json", action="store_true", help="one JSON list instead of a line per image")
    r.set_defaults(run=read)

    f = verbs.add_parser("finetune", help="a copy of a trained run whose samples carry a key")
    f.add_argument("run_dir", help="the trained run to copy")
    f.add_argument("--mark", required=True, help="the watermark directory whose extractor reads the key")
    f.add_argument("--key", required=True, help="the key its samples will carry, in hex")
    f.add_argument("--out", required=True, help="the new run directory (new or empty)")
    f.add_argument("--steps", type=positive_int, default=2000, help="fine-tuning steps (default 2000)")
    f.add_argument("--batch-size", type=positive_int, default=32, help="samples per step (default 32)")
    f.add_argument("--lr", type=positive_float, default=1e-3, help="learning rate (default 1e-3)")
    f.add_argument("--keep-weight", type=positive_float, default=300.0, help="how much staying close to the "
                   "original model's samples counts against carrying the key (default 300)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.set_defaults(run=finetune)


def _progress_bar(disabled: bool):
    """A callback for the library's progress(step, fraction, losses), drawing a bar in percent."""
    from tqdm.auto import tqdm
    bar = tqdm(total=100, disable=disabled, dynamic_ncols=True, unit="%")

    def update(step, fraction, losses):
        bar.n = round(100 * fraction)
        bar.set_postfix({"step": step, **{k: f"{v:.3g}" for k, v in losses.items()}}, refresh=False)
        bar.refresh()
    return update, bar


def train(args) -> int:
    from ..provenance.watermark import train_watermark
    from ..provenance.watermark.train import DEFAULT_MINUTES
    check_output(args.out, (FOLDER,), "--out")
    mark = {k: v for k, v in (("width", args.width), ("strength", args.strength)) if v is not None}
    training = {k: v for k, v in (("image_weight", args.image_weight), ("batch_size", args.batch_size),
                                  ("lr", args.lr)) if v is not None}
    minutes = args.minutes if args.minutes or args.steps else DEFAULT_MINUTES
    update, bar = _progress_bar(args.no_progress)
    try:
        out = train_watermark(args.dataset, args.out, bits=args.bits, image_size=args.image_size, minutes=minutes,
                              steps=args.steps, data_dir=args.data_dir, key=args.key, progress=update,
                              mark=mark, seed=args.seed, **training)
    finally:
        bar.close()
    info = json.loads((out / "config.json").read_text())
    m = info["measured"]
    print(f"wrote {out}: {m['bits']} bits, {info['training']['steps']} steps; on {m['images']} test images "
          f"PSNR {m['psnr_db']} dB, bit accuracy {m['clean']['bit_accuracy']:.3f} clean, "
          f"{m['jpeg75']['bit_accuracy']:.3f} after JPEG 75; its own key is {info['key']}")
    return 0


def image_files(targets: list[str]) -> list[Path]:
    """The image files named, and those in the folders named (sorted), in order."""
    files = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in EXTENSIONS
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not found:
                raise DataError(f"{path} holds no image files")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise DataError(f"{path} does not exist")
    return files


def embed(args) -> int:
    from ..provenance.watermark import check_key, embed as embed_images, load_watermark
    mark = load_watermark(args.mark)
    files = image_files(args.images)
    kind = check_output(args.out, (FOLDER, ".png"), "--out")
    if kind == ".png" and len(files) != 1:
        raise DataError(f"--out {args.out} is one .png file but {len(files)} images were given; give a folder")
    c, h, w = mark.image_shape
    pictures = []
    for path in files:
        im = _open(path, c)
        if im.size != (w, h):
            print(f"{path}: resized {im.width}x{im.height} to {w}x{h}, the watermark's size", file=sys.stderr)
            pictures.append(_tensor(resize_square(im, h)))
        else:
            pictures.append(_tensor(np.asarray(im, dtype=np.uint8)))
    marked = embed_images(torch.cat(pictures), mark, args.key)
    out = Path(args.out)
    targets = [out] if kind == ".png" else _names(files, out)
    (out if kind == FOLDER else out.parent).mkdir(parents=True, exist_ok=True)
    for image, target in zip(marked, targets):
        arr = image.permute(1, 2, 0).mul(255).round().byte().numpy()
        Image.fromarray(arr[..., 0] if c == 1 else arr).save(target)
    key = check_key(args.key if args.key is not None else mark.key, mark.bits)
    print(f"marked {len(files)} image(s) with key {key}; wrote {out}")
    return 0


def _names(files: list[Path], folder: Path) -> list[Path]:
    """OUT/<name>.png for each input, a number added where two inputs share a name."""
    seen, out = {}, []
    for path in files:
        stem = path.stem
        seen[stem] = seen.get(stem, 0) + 1
        out.append(folder / (f"{stem}.png" if seen[stem] == 1 else f"{stem}-{seen[stem]}.png"))
    return out


def read(args) -> int:
    from ..provenance.watermark import load_watermark, read_marks
    mark = load_watermark(args.mark)
    results = []
    for path in image_files(args.images):
        result = read_marks(read_picture(path, mark.image_shape[0]), mark, args.key, args.fpr)[0]
        results.append({"image": str(path), **result})
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        if r["matches"] is None:
            print(f"{r['image']}: read key {r['key']} (no key to compare with; give --key)")
            continue
        verdict = "marked" if r["marked"] else "not marked"
        print(f"{r['image']}: {verdict}: {r['bits_agree']}/{r['bits']} bits agree with {r['matches']} "
              f"(p = {r['p_value']:.2g}); read {r['key']}")
    return 0


def finetune(args) -> int:
    from ..provenance.watermark.finetune import finetune_run
    update, bar = _progress_bar(args.no_progress)
    try:
        result = finetune_run(args.run_dir, args.mark, args.key, args.out, steps=args.steps,
                              batch_size=args.batch_size, lr=args.lr, keep_weight=args.keep_weight, seed=args.seed,
                              progress=update)
    finally:
        bar.close()
    before, after = result["before"], result["after"]
    print(f"wrote {args.out}: bit accuracy of {after['samples']} samples {before['bit_accuracy']:.3f} before, "
          f"{after['bit_accuracy']:.3f} after; read as marked (FPR 1e-6) {before['tpr']:.2f} before, "
          f"{after['tpr']:.2f} after; new samples {result['psnr_to_original_db']} dB PSNR from the old")
    return 0
