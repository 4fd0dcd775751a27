"""Reading the images to edit: a PNG/JPEG file, a folder of them, an `.npz` array, or a slice
of a data set written `mnist:test:0-999`. Whatever comes in leaves as an ImageSet in the
model's image shape; labels come along where the source has them (data sets, class folders).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..data import DATASETS, ImageSet, load_folder, load_slice
from ..data.folder import read_image
from ..errors import DataError
from ..imageio import load_images

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg"}


def read_images(source: str, image_shape: tuple[int, int, int], data_dir=None, background=None) -> ImageSet:
    """The images named by `source`, converted to `image_shape` (C, H, W); transparency (a folder,
    emoji) composited onto `background` (a run's own; None: white)."""
    channels, size, _ = image_shape
    path = Path(source).expanduser()
    if path.is_dir():
        images = load_folder(path, size, channels, background)
        log.info("%s: read %d image(s) as %dx%d, %d channel(s)", path, len(images), size, size, channels)
        return images
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return ImageSet(load_images(path, size, channels), name=path.name)
        return ImageSet(read_image_file(path, size, channels)[None], name=path.name)
    if ":" not in source and source.strip().lower().replace("_", "-") not in DATASETS:
        raise DataError(f"{source}: no such file, folder or data set; give an image, a folder, an .npz "
                        "or a data set slice such as mnist:test:0-99")
    from ..data.source import parse_slice, takes_background
    takes = takes_background(parse_slice(source)[0])
    return load_slice(source, size, channels, data_dir, background=background if takes else None)


def read_image_file(path: Path, size: int, channels: int) -> torch.Tensor:
    """One PNG/JPEG file as uint8 (C, H, W), converted and resized with a notice where needed."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{path}: not an image; give a .png/.jpg file, a folder of them, an .npz "
                        "or a data set slice such as mnist:test:0-99")
    try:
        pixels, mode, (width, height) = read_image(path, size, channels)
    except Exception as e:  # Pillow signals a bad file with many exception types; any means unreadable
        raise DataError(f"{path}: not a readable image ({e})") from None
    wanted = "L" if channels == 1 else "RGB"
    if mode != wanted or (width, height) != (size, size):
        log.info("%s: converting a %dx%d %s image to %dx%d %s", path, width, height, mode, size, size, wanted)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()


def as_float(images: ImageSet | torch.Tensor) -> torch.Tensor:
    """uint8 images (or an ImageSet) as floats in [0, 1], the model interface's form."""
    x = images.images if isinstance(images, ImageSet) else images
    return x.float().div(255)
