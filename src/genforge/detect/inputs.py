"""Whatever someone asks to have judged, as images the detector can take: a file, a folder,
an .npz array or a data-set slice ("mnist:test:0-99"). Each image is converted to the
detector's size with a note saying so; a file that cannot be read becomes an item with an
error, so one bad file never stops the others from being judged.

The mode is converted only where nothing is lost or made up: a grey picture stored as RGB is
judged by a grey detector (with a note). A colour picture is not turned grey for a grey detector,
nor a grey one coloured for a colour detector: the detector would judge a picture unlike any it
trained on, and its verdict would mean nothing. Such a file becomes an item with an error; an
.npz array or a data set of the other mode is refused as a whole, unless it is the data
set the detector trained on (converted for training, it is converted the same way here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..data import load_slice, parse_slice
from ..data.folder import open_image, resize_square
from ..errors import DataError, GenforgeError
from ..imageio import load_images
from .detector import describe_channels

COLOUR_SPREAD = 16  # levels between a pixel's channels above which a picture counts as colour


def mode_refusal(what: str, channels: int, detector_channels: int) -> str:
    """The one line that refuses images of the wrong mode."""
    return (f"{what} holds {describe_channels(channels)} images but this detector was trained on "
            f"{describe_channels(detector_channels)} images; judge them with a detector trained on "
            f"{'colour' if channels == 3 else 'grey'} images")


def is_colour(picture: np.ndarray) -> bool:
    """Whether a uint8 (H, W, 3) picture has colour: some pixel's channels differ by more than
    COLOUR_SPREAD levels (a grey picture saved as RGB or JPEG differs by a level or two at most)."""
    spread = picture.max(-1).astype(np.int16) - picture.min(-1).astype(np.int16)
    return bool((spread > COLOUR_SPREAD).any())


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
        converted, mode = open_image(path, None)  # L if the file is grey, else RGB
    except Exception as e:  # Pillow signals a bad file with many exception types; any means unreadable
        return Item(name, error=f"not a readable image ({type(e).__name__}: {e})")
    if converted.mode == "RGB" and channels == 1:
        if is_colour(np.asarray(converted)):
            return Item(name, error=mode_refusal("this file", 3, 1))
        converted = converted.convert("L")
    elif converted.mode == "L" and channels == 3:
        return Item(name, error=mode_refusal("this file", 1, 3))
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


def _npz_channels(path: Path) -> int | None:
    """The channels of an .npz file's `images` (N, H, W[, C]), or None where load_images will say
    what is wrong with the file."""
    try:
        with np.load(path, allow_pickle=False) as z:
            shape = z["images"].shape
    except Exception:  # unreadable, or no 'images': load_images raises the message for it
        return None
    return 1 if len(shape) == 3 else int(shape[-1]) if len(shape) == 4 else None


def _data_set(spec: str) -> str | None:
    """The data set a slice names ("emoji:train:0-99" -> "emoji"), None if it names none."""
    try:
        return parse_slice(spec)[0] if spec else None
    except GenforgeError:
        return None


def read_inputs(target: str, channels: int, size: int, trained_on: str = "") -> list[Item]:
    """The images `target` names, as Items at the detector's `channels` and `size`. `trained_on` is the
    detector's real training data ("emoji:train"): a slice of that data set is converted to the
    detector's mode as training converted it, whatever its own mode."""
    path = Path(target).expanduser()
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise DataError(f"{path}: no image files in this folder")
        return [_read_file(f, f.relative_to(path).as_posix(), channels, size) for f in files]
    if path.is_file() and path.suffix.lower() == ".npz":
        stored = _npz_channels(path)
        if stored is not None and stored != channels:
            raise DataError(mode_refusal(str(path), stored, channels))
        images = load_images(path, size, channels)
        return _from_tensor([f"{path.name}[{i}]" for i in range(len(images))], images)
    if path.is_file():
        return [_read_file(path, path.name, channels, size)]
    if ":" not in target:
        raise DataError(f"{target}: no such file or folder (give images, a folder, an .npz or a data slice "
                        "such as mnist:test:0-99)")
    name, split, start, _ = parse_slice(target)
    data = load_slice(target, size)  # in the data set's own mode, checked before anything is converted
    if data.shape[0] != channels:
        if _data_set(trained_on) != name:
            raise DataError(mode_refusal(target, data.shape[0], channels))
        data = load_slice(target, size, channels)
    return _from_tensor([f"{name}:{split}:{start + i}" for i in range(len(data))], data.images)
