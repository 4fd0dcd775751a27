"""One entry point from a data-set string ("mnist", "folder:PATH") to an ImageSet."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import torch
import torch.nn.functional as F

from genforge.data.folder import load_folder, parse_background
from genforge.data.imageset import ImageSet
from genforge.data.registry import get_spec, load_split
from genforge.errors import DataError, UnknownName

FOLDER = "folder:"
FOLDER_SPLITS = ("train", "test")
CHUNK = 8192  # images resized at once: bounds the float copy to a few hundred MB at most


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    out = []
    for chunk in images.split(CHUNK):
        x = F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True)
        out.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def _set_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    c = images.shape[1]
    if channels == c:
        return images
    if (c, channels) == (1, 3):
        return images.repeat(1, 3, 1, 1)
    if (c, channels) == (3, 1):  # ITU-R 601 luma, as Pillow's convert('L')
        weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255).to(torch.uint8)
    raise DataError(f"cannot turn {c}-channel images into {channels} channels; use 1 or 3")


def _folder(path: str, split: str, image_size: int | None, channels: int | None, background) -> ImageSet:
    root = Path(path).expanduser()
    if all((root / s).is_dir() for s in FOLDER_SPLITS):
        if split not in FOLDER_SPLITS:
            raise UnknownName(f"unknown split '{split}' of {root}; known: {', '.join(FOLDER_SPLITS)}")
        root = root / split
    elif split != "train":
        raise DataError(f"{root} has no train/ and test/ sub-folders, so all of it is the train split; "
                        f"make both sub-folders to have a '{split}' split")
    # cached: decoded once into a memory-mapped file, reused while no file changes
    images = load_folder(root, image_size or 32, channels, background, cache=True)
    images.name = FOLDER + path
    return images


def takes_background(spec: str) -> bool:
    """Whether a data set has transparency to composite onto a background: emoji and folders."""
    return spec.startswith(FOLDER) or "background" in get_spec(spec).reader.takes


def load_dataset(spec: str, split: str = "train", data_dir=None,
                 image_size: int | None = None, channels: int | None = None,
                 background=None) -> ImageSet:
    """A registry data set ("mnist", "emoji", "celeba64", ...) or "folder:PATH", as an ImageSet.

    image_size/channels, where given, resize registry data as a whole tensor (an antialiased
    bilinear filter), except CelebA, which decodes its photos at image_size with PIL's
    Lanczos; folders are centre-cropped and resized image by image while reading (default 32),
    and kept in a memory-mapped cache so that a later load reads nothing but the file list.
    background: the colour that transparency is composited onto (a colour name, '#rrggbb',
    'R,G,B' or (r, g, b); None: white), for the data sets that have transparency, emoji and
    folders; given for another data set it is an error, since it would change nothing.
    """
    if image_size is not None and image_size < 1:
        raise DataError(f"image size must be a positive number of pixels, not {image_size}")
    if spec.startswith(FOLDER):
        return _folder(spec[len(FOLDER):], split, image_size, channels, background)
    takes = get_spec(spec).reader.takes
    options = {}
    if background is not None:
        if "background" not in takes:
            raise DataError(f"{get_spec(spec).name} has no transparency, so a background colour changes nothing; "
                            "--background is for emoji and folder:PATH data sets")
        options["background"] = parse_background(background)
    if image_size and "size" in takes:
        options["size"] = image_size  # decoded at this size from the source images
    data = load_split(spec, split, data_dir, **options)
    images = data.images
    if image_size and image_size != images.shape[-1]:
        images = _resize(images, image_size)
    if channels:
        images = _set_channels(images, channels)
    return dataclasses.replace(data, images=images)  # labels and any other per-image fields as they were


_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def _parse_range(text: str, spec: str) -> tuple[int, int]:
    match = _RANGE.fullmatch(text)
    if not match:
        raise DataError(f"bad range '{text}' in '{spec}'; write N or FIRST-LAST, e.g. mnist:test:0-99")
    start = int(match[1])
    last = int(match[2]) if match[2] is not None else start
    if last < start:
        raise DataError(f"range '{text}' in '{spec}' ends before it starts; write FIRST-LAST, e.g. 0-99")
    return start, last + 1


def parse_slice(spec: str) -> tuple[str, str, int, int | None]:
    """"DATASET[:SPLIT[:FIRST-LAST]]" -> (dataset, split, start, stop).

    The range is written inclusive ("0-99" is 100 images) and returned Python-style,
    so images[start:stop] takes it; stop is None when no range is given (all images).
    Split defaults to train. A folder path may contain ':', so folders parse from the right.
    """
    spec = spec.strip()
    if not spec:
        raise DataError("empty data set; write e.g. mnist:test:0-99 or folder:PATH:train")
    start, stop = 0, None
    if spec.startswith(FOLDER):
        parts = spec[len(FOLDER):].split(":")
        if len(parts) >= 3 and parts[-2] in FOLDER_SPLITS and _RANGE.fullmatch(parts[-1]):
            start, stop = _parse_range(parts.pop(), spec)
        split = parts.pop() if len(parts) >= 2 and parts[-1] in FOLDER_SPLITS else "train"
        path = ":".join(parts)
        if not path:
            raise DataError(f"no folder in '{spec}'; write folder:PATH")
        return FOLDER + path, split, start, stop
    parts = spec.split(":")
    if len(parts) > 3:
        raise DataError(f"too many ':' in '{spec}'; write DATASET[:SPLIT[:FIRST-LAST]], e.g. mnist:test:0-99")
    name = get_spec(parts[0]).name
    split = parts[1] if len(parts) > 1 else "train"
    if split not in get_spec(name).files:
        raise UnknownName(f"unknown split '{split}' in '{spec}'; known: {', '.join(get_spec(name).files)}")
    if len(parts) == 3:
        start, stop = _parse_range(parts[2], spec)
    return name, split, start, stop


def load_slice(spec: str, image_size: int | None = None, channels: int | None = None, data_dir=None,
               background=None) -> ImageSet:
    """The images a slice such as "mnist:test:0-999" names (the syntax every image input takes)."""
    name, split, start, stop = parse_slice(spec)
    data = load_dataset(name, split, data_dir=data_dir, image_size=image_size, channels=channels,
                        background=background)
    stop = len(data) if stop is None else stop
    if stop > len(data):
        raise DataError(f"'{spec}' asks for images up to {stop - 1}, but the {split} split of {name} "
                        f"has {len(data)} (0-{len(data) - 1})")
    return data.subset(slice(start, stop))  # a slice: a view of the (maybe memory-mapped) images, no copy
