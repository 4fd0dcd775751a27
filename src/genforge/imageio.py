"""Writing generated images: a folder of PNGs, one `.npz` array, or one grid picture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .output_paths import FOLDER, check_output
from .report.grid import make_grid, save_png, to_uint8


def check_images_path(path: str | Path, grid: bool = False, flag: str = "") -> str:
    """What `save_images` will write at `path` (FOLDER, ".npz" or ".png"), or OutputPathError in one
    line for a path it cannot write; call it before the work that makes the images."""
    if grid:
        return check_output(path, (".png", FOLDER), flag, hint="--grid writes one .png picture, "
                            "or FOLDER/grid.png")
    hint = "a single .png is a grid: add --grid" if Path(path).suffix.lower() == ".png" else ""
    return check_output(path, (FOLDER, ".npz"), flag, hint=hint)


def save_images(images: torch.Tensor, path: str | Path, grid: bool = False, signer=None) -> Path:
    """Saves float images (N, C, H, W) in [0, 1]; returns what was written.

    - grid: one PNG tiling all images (PATH itself if it ends in .png, else PATH/grid.png);
    - PATH ending in .npz: array `images`, uint8, shape (N, H, W, C);
    - a folder (an existing one, or a path without a suffix): PATH/00000.png, PATH/00001.png, ...

    With a `signer` (genforge.provenance.Signer) each PNG carries a signed manifest (one per file;
    a folder's image i records its index i). An .npz is never signed: it has no place for one.
    Any other path (y.txt, a .png without grid) raises OutputPathError (output_paths.py).
    """
    path = Path(path)
    kind = check_images_path(path, grid)
    if grid:
        return save_png(make_grid(images), path if kind == ".png" else path / "grid.png", signer)
    arr = to_uint8(images)
    if kind == ".npz":
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:  # a file object: numpy would add .npz to a name ending .NPZ
            np.savez_compressed(f, images=arr)
        return path
    path.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(len(arr) - 1)))
    for i, img in enumerate(arr):
        picture = Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img)
        if signer is not None:
            signer.save(picture, path / f"{i:0{width}d}.png", index=i)
        else:
            picture.save(path / f"{i:0{width}d}.png")
    return path


def load_images(path: str | Path, image_size: int, channels: int) -> torch.Tensor:
    """uint8 images (N, C, H, W) from a folder of PNG/JPEG files or an `.npz` holding `images`
    (N, H, W[, C]) uint8; images of another size or mode are converted, with a notice."""
    import logging

    import torch.nn.functional as F

    from .data import load_folder
    from .errors import DataError

    path = Path(path)
    if path.is_dir():
        return load_folder(path, image_size, channels).images
    if path.suffix.lower() != ".npz":
        raise DataError(f"{path}: give a folder of images or an .npz file with an array 'images'")
    try:
        with np.load(path, allow_pickle=False) as z:
            arr = z["images"]
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except KeyError:
        raise DataError(f"{path} has no array named 'images'") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{path} is not a readable .npz file ({e})") from None
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3) or arr.dtype != np.uint8 or len(arr) == 0:
        raise DataError(f"{path}: 'images' must be uint8 of shape (N, H, W, C) with C 1 or 3, "
                        f"got {arr.dtype} {arr.shape}")
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).contiguous()
    if x.shape[1] != channels:
        logging.getLogger(__name__).info("%s: converting %d-channel images to %d", path, x.shape[1], channels)
        x = x.float().mean(1, keepdim=True) if channels == 1 else x.float().repeat(1, 3, 1, 1)
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        logging.getLogger(__name__).info("%s: resizing %dx%d images to %dx%d", path, x.shape[-2], x.shape[-1],
                                         image_size, image_size)
        x = F.interpolate(x.float(), size=(image_size, image_size), mode="bilinear", antialias=True)
    return x.round().clamp(0, 255).to(torch.uint8) if x.is_floating_point() else x
