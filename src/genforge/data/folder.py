"""A folder of PNG/JPEG files as an ImageSet; sub-folder names become class labels."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from genforge.data.imageset import ImageSet
from genforge.errors import DataError

log = logging.getLogger(__name__)

EXTENSIONS = {".png", ".jpg", ".jpeg"}
GRAY_MODES = {"L", "1", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N"}


def _image_files(root: Path) -> list[Path]:
    # hidden files and folders (.ipynb_checkpoints, macOS ._x.png) are never training data
    files = [p for p in root.rglob("*")
             if p.suffix.lower() in EXTENSIONS and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def to_mode(im: Image.Image, gray: bool) -> Image.Image:
    if im.mode.startswith("I"):
        # 16-bit grey: Pillow's convert('L') clips at 255, so scale it down ourselves
        im = Image.fromarray((np.clip(np.asarray(im, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8))
    elif im.mode == "P":
        im = im.convert("RGBA")  # palette transparency converts cleanly only via RGBA
    return im.convert("L" if gray else "RGB")


def open_image(path: Path, channels: int | None) -> tuple[Image.Image, str]:
    """The file's picture, upright and converted to L (channels 1, or None and grey in the file)
    or RGB at its own size, and the mode it had in the file."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)  # phone photos store rotation in EXIF
        return to_mode(im, channels == 1 or (channels is None and im.mode in GRAY_MODES)), im.mode


def resize_square(im: Image.Image, size: int) -> np.ndarray:
    """(size, size, 1 or 3) uint8: Lanczos when shrinking, bicubic when enlarging."""
    shrink = im.width > size or im.height > size
    im = im.resize((size, size), Image.Resampling.LANCZOS if shrink else Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8).reshape(size, size, -1)


def read_image(path: Path, size: int, channels: int | None) -> tuple[np.ndarray, str, tuple[int, int]]:
    """One image resized to (size, size, 1 or 3) uint8 (channels None: 1 if it was grey), and
    the mode and size it had in the file."""
    im, mode = open_image(path, channels)
    return resize_square(im, size), mode, im.size


def load_folder(path, image_size: int = 32, channels: int | None = None) -> ImageSet:
    """All PNG/JPEG files under path, resized to image_size x image_size.

    channels: 1 or 3, or None for 1 when every image is greyscale, else 3. Images are
    stretched, not cropped, to a square. When every image sits in a sub-folder directly
    under path, the sorted sub-folder names are the classes; otherwise labels are None.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such folder; give a folder that holds .png/.jpg images")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder; give the folder that holds the images")
    if channels not in (None, 1, 3) or image_size < 1:
        raise DataError(f"cannot load {root} as {channels} channels of {image_size}px; "
                        "use 1 or 3 channels and a positive size")
    files = _image_files(root)
    pixels, grays, kept, skipped = [], [], [], []
    for file in files:
        try:
            array, mode, _ = read_image(file, image_size, channels)
        except Exception:  # Pillow signals a bad file with many exception types; any means unreadable
            skipped.append(file)
            continue
        pixels.append(array)
        grays.append(mode in GRAY_MODES)
        kept.append(file)
    if skipped:
        log.warning("%s: skipped %d unreadable image file(s), e.g. %s", root, len(skipped), skipped[0])
    if not kept:
        extra = f" ({len(skipped)} unreadable)" if skipped else ""
        raise DataError(f"{root}: no readable .png/.jpg/.jpeg images found{extra}; "
                        "give a folder that holds image files")
    if channels is None and not all(grays):
        # grey images read as 1 channel: repeating it is what converting to RGB would give
        pixels = [np.repeat(p, 3, axis=2) if p.shape[2] == 1 else p for p in pixels]
    images = torch.from_numpy(np.stack(pixels)).permute(0, 3, 1, 2).contiguous()

    labels, classes = None, None
    parts = [f.relative_to(root).parts for f in files]
    if all(len(p) == 2 for p in parts):
        classes = sorted({p[0] for p in parts})  # from all files, so a bad file cannot shift class ids
        index = {c: i for i, c in enumerate(classes)}
        labels = torch.tensor([index[f.relative_to(root).parts[0]] for f in kept], dtype=torch.int64)
    return ImageSet(images, labels, classes, root.name)
