"""Whatever someone asks to have judged, as images the detector can take: a file, a folder,
an .npz array or a data-set slice ("mnist:test:0-99"). Each image is converted to the
detector's size and mode with a note saying so; a file that cannot be read becomes an item
with an error, so one bad file never stops the others from being judged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data import load_slice, parse_slice
from ..data.folder import open_image, resize_square
from ..errors import DataError
from ..imageio import load_images


@dataclass
class Item:
    name: str
    image: torch.Tensor | None = None  # (C, H, W) in [0, 1] at the detector's size
    original: np.ndarray | None = None  # uint8 (H, W, C) as read, for the heatmap overlay
    note: str = ""  # how the image was converted, if it was
    error: str = ""  # why it could not be read, if it could not


def _image_files(folder: Path) -> list[Path]:
    extensions = set(Image.registered_extensions())
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _read_file(path: Path, name: str, channels: int, size: int) -> Item:
    try:
        converted, mode = open_image(path, channels)
    except Exception as e:  # Pillow signals a bad file with many exception types; any means unreadable
        return Item(name, error=f"not a readable image ({type(e).__name__}: {e})")
    (w, h), notes = converted.size, []
    if mode != converted.mode:
        notes.append(f"converted {mode} to {converted.mode}")
    if (w, h) != (size, size):
        notes.append(f"resized {w}x{h} to {size}x{size}")
    image = torch.from_numpy(resize_square(converted, size).copy()).permute(2, 0, 1).float() / 255
    return Item(name, image, np.asarray(converted, dtype=np.uint8).reshape(h, w, channels), ", ".join(notes))


def _from_tensor(names: list[str], images: torch.Tensor) -> list[Item]:
    """uint8 (N, C, H, W) images already at the detector's size."""
    return [Item(name, img.float() / 255, img.permute(1, 2, 0).numpy()) for name, img in zip(names, images)]


def read_inputs(target: str, channels: int, size: int) -> list[Item]:
    path = Path(target).expanduser()
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise DataError(f"{path}: no image files in this folder")
        return [_read_file(f, f.relative_to(path).as_posix(), channels, size) for f in files]
    if path.is_file() and path.suffix.lower() == ".npz":
        images = load_images(path, size, channels)
        return _from_tensor([f"{path.name}[{i}]" for i in range(len(images))], images)
    if path.is_file():
        return [_read_file(path, path.name, channels, size)]
    if ":" not in target:
        raise DataError(f"{target}: no such file or folder (give images, a folder, an .npz or a data slice "
                        "such as mnist:test:0-99)")
    name, split, start, _ = parse_slice(target)
    data = load_slice(target, size, channels)
    return _from_tensor([f"{name}:{split}:{start + i}" for i in range(len(data))], data.images)
