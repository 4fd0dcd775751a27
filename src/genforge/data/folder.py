"""A folder of PNG/JPEG files as an ImageSet; sub-folder names become class labels.

Every picture is turned into a square of one size the same way: upright (EXIF rotation
applied), transparency composited onto a background colour (white unless asked otherwise),
grey or RGB as asked, centre-cropped to a square (never squashed) and resized with an
antialiasing filter (Lanczos when shrinking, bicubic when enlarging). With `cache=True`, which
`folder:PATH` data sets use, the decoded folder is kept as a memory-mapped file
(folder_cache.py) so later runs start at once and a folder larger than memory can be used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageColor, ImageOps
from tqdm import tqdm

from genforge.data.imageset import ImageSet
from genforge.errors import DataError

log = logging.getLogger(__name__)

EXTENSIONS = {".png", ".jpg", ".jpeg"}
GRAY_MODES = {"L", "1", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N"}
ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
WHITE = (255, 255, 255)
Background = str | Sequence[int]


def parse_background(background: Background | None) -> tuple[int, int, int]:
    """(r, g, b) of a colour name ('white', 'black'), a hex colour ('#808080'), 'R,G,B' text
    ('128,128,128') or 3 numbers 0..255; None is white."""
    if background is None:
        return WHITE
    given = background
    if isinstance(background, str):
        text = background.strip()
        numbers = text.split(",")
        if len(numbers) == 3 and all(n.strip().isdigit() for n in numbers):
            background = [int(n) for n in numbers]  # checked below, with the tuples
        else:
            try:
                return tuple(ImageColor.getrgb(text)[:3])
            except ValueError:
                pass
    if isinstance(background, Sequence) and not isinstance(background, str) and len(background) == 3 and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and 0 <= v <= 255 for v in background):
        return tuple(int(v) for v in background)
    raise DataError(f"unknown background colour {given!r}; give a colour name such as white or black, "
                    "a hex colour such as #808080, or three numbers 0-255")


def _image_files(root: Path) -> list[Path]:
    # hidden files and folders (.ipynb_checkpoints, macOS ._x.png) are never training data
    files = [p for p in root.rglob("*")
             if p.suffix.lower() in EXTENSIONS and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def has_alpha(im: Image.Image) -> bool:
    """Whether some pixels may be (partly) transparent: an alpha band, or a transparent
    palette index or colour key (PNG tRNS)."""
    return im.mode in ALPHA_MODES or "transparency" in im.info


def reads_gray(im: Image.Image, background: tuple[int, int, int] = WHITE) -> bool:
    """Whether a picture is grey once composited: a grey mode, and no transparency unless the
    background is grey too (grey pixels over a red background are not grey)."""
    return im.mode in GRAY_MODES and (not has_alpha(im) or len(set(background)) == 1)


def composite(im: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """An RGBA, LA, PA or transparent-palette picture laid over an opaque background colour, as
    RGB; a picture without transparency comes back as it is. (A plain convert('RGB') would keep
    the colour under fully transparent pixels, often black, and ignore half transparency.)"""
    if not has_alpha(im):
        return im
    ground = Image.new("RGBA", im.size, (*background, 255))
    return Image.alpha_composite(ground, im.convert("RGBA")).convert("RGB")


def to_mode(im: Image.Image, gray: bool, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """The picture as L (gray) or RGB, transparency composited onto `background`."""
    if im.mode.startswith("I"):
        # 16-bit grey: Pillow's convert('L') clips at 255, so scale it down ourselves
        im = Image.fromarray((np.clip(np.asarray(im, dtype=np.int64), 0, 65535) >> 8).astype(np.uint8))
    im = composite(im, background)
    return im.convert("L" if gray else "RGB")


def open_image(path: Path, channels: int | None,
               background: tuple[int, int, int] = WHITE) -> tuple[Image.Image, str]:
    """The file's picture, upright and converted to L (channels 1, or None and grey in the file)
    or RGB at its own size, and the mode it had in the file."""
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)  # phone photos store rotation in EXIF
        gray = channels == 1 or (channels is None and reads_gray(im, background))
        return to_mode(im, gray, background), im.mode


def centre_square(im: Image.Image) -> Image.Image:
    """The largest centred square of the picture: the longer side loses equal parts at both ends."""
    side = min(im.width, im.height)
    if im.width == im.height:
        return im
    left, top = (im.width - side) // 2, (im.height - side) // 2
    return im.crop((left, top, left + side, top + side))


def resize_square(im: Image.Image, size: int) -> np.ndarray:
    """(size, size, 1 or 3) uint8 of the whole picture, stretched to a square if it is not one:
    Lanczos when shrinking, bicubic when enlarging. For judging every pixel of a picture (the
    detector); data sets crop instead (crop_resize), so that shapes keep their proportions."""
    if im.size != (size, size):
        shrink = im.width > size or im.height > size
        im = im.resize((size, size), Image.Resampling.LANCZOS if shrink else Image.Resampling.BICUBIC)
    return np.asarray(im, dtype=np.uint8).reshape(size, size, -1)


def crop_resize(im: Image.Image, size: int) -> np.ndarray:
    """(size, size, 1 or 3) uint8 of the picture's centre square, resized with an antialiasing
    filter: the aspect ratio is kept, and what lies outside the square is cut away."""
    return resize_square(centre_square(im), size)


def read_image(path: Path, size: int, channels: int | None,
               background: tuple[int, int, int] = WHITE) -> tuple[np.ndarray, str, tuple[int, int]]:
    """One image as (size, size, 1 or 3) uint8 (channels None: 1 if it was grey), centre-cropped
    and resized, and the mode and size it had in the file."""
    im, mode = open_image(path, channels, background)
    return crop_resize(im, size), mode, im.size


def _resolve_channels(files: list[Path], background: tuple[int, int, int]) -> tuple[int, list[int]]:
    """1 when every file is grey, else 3, from the headers alone (no decoding); and the indices
    of the files whose header could be read."""
    grays, readable = [], []
    for i, file in enumerate(files):
        try:
            with Image.open(file) as im:
                grays.append(reads_gray(im, background))
        except Exception:  # Pillow signals a bad file with many exception types; any means unreadable
            continue
        readable.append(i)
    return (1 if grays and all(grays) else 3), readable


def decode_folder(files: list[Path], size: int, channels: int | None, background: tuple[int, int, int],
                  make_array: Callable[[tuple[int, ...]], np.ndarray], progress: bool = False
                  ) -> tuple[np.ndarray, list[int], int]:
    """Every readable file decoded into make_array((n, channels, size, size)), one at a time
    (memory holds one picture, so the array may be a memory map larger than RAM).

    Returns the array, the indices of the files it holds (kept in order at its front: rows
    past len(kept) are unused when some file could not be decoded) and the channels."""
    candidates = range(len(files))
    if channels is None:
        channels, candidates = _resolve_channels(files, background)
    out = make_array((len(candidates), channels, size, size))
    kept: list[int] = []
    bar = tqdm(candidates, desc=f"decoding {len(candidates)} images", unit="img", disable=None if progress else True,
               leave=False)
    for i in bar:
        try:
            pixels, _, _ = read_image(files[i], size, channels, background)
        except Exception:  # Pillow signals a bad file with many exception types; any means unreadable
            continue
        out[len(kept)] = pixels.transpose(2, 0, 1)
        kept.append(i)
    bar.close()
    return out, kept, channels


def folder_labels(root: Path, files: list[Path], kept: list[int]) -> tuple[list[int] | None, list[str] | None]:
    """Labels of the kept files and the class names, when every file sits in a sub-folder
    directly under root (sorted sub-folder names are the classes); (None, None) otherwise."""
    parts = [f.relative_to(root).parts for f in files]
    if not parts or not all(len(p) == 2 for p in parts):
        return None, None
    classes = sorted({p[0] for p in parts})  # from all files, so a bad file cannot shift class ids
    index = {c: i for i, c in enumerate(classes)}
    return [index[parts[i][0]] for i in kept], classes


def report_skipped(root: Path, files: list[Path], kept: list[int]) -> None:
    """Warns about unreadable files; raises when none could be read."""
    skipped = len(files) - len(kept)
    if skipped:
        decoded = set(kept)
        first = next(f for i, f in enumerate(files) if i not in decoded)
        log.warning("%s: skipped %d unreadable image file(s), e.g. %s", root, skipped, first)
    if not kept:
        extra = f" ({skipped} unreadable)" if skipped else ""
        raise DataError(f"{root}: no readable .png/.jpg/.jpeg images found{extra}; "
                        "give a folder that holds image files")


def load_folder(path, image_size: int = 32, channels: int | None = None,
                background: Background | None = "white", cache: bool = False) -> ImageSet:
    """All PNG/JPEG files under path, centre-cropped and resized to image_size x image_size.

    channels: 1 or 3, or None for 1 when every image is greyscale, else 3. Transparent pixels
    are composited onto `background` (a colour name, '#rrggbb' or (r, g, b); white by default).
    When every image sits in a sub-folder directly under path, the sorted sub-folder names are
    the classes; otherwise labels are None. With `cache`, the decoded images live in a
    memory-mapped file in genforge's cache, reused while no file changes (folder_cache.py).
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise DataError(f"{root}: no such folder; give a folder that holds .png/.jpg images")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder; give the folder that holds the images")
    if channels not in (None, 1, 3) or image_size < 1:
        raise DataError(f"cannot load {root} as {channels} channels of {image_size}px; "
                        "use 1 or 3 channels and a positive size")
    rgb = parse_background(background)
    files = _image_files(root)
    if cache:
        from genforge.data.folder_cache import cached_folder
        array, kept, labels, classes = cached_folder(root, files, image_size, channels, rgb)
    else:
        array, kept, _ = decode_folder(files, image_size, channels, rgb, lambda shape: np.empty(shape, np.uint8))
        report_skipped(root, files, kept)
        array = array[:len(kept)]
        labels, classes = folder_labels(root, files, kept)
    images = torch.from_numpy(array)
    label_tensor = torch.tensor(labels, dtype=torch.int64) if labels is not None else None
    return ImageSet(images, label_tensor, classes, root.name)
