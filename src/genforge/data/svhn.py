"""SVHN (Street View House Numbers, cropped digits): the `.mat` files of its format 2.

`train_32x32.mat` and `test_32x32.mat` are MATLAB v5 files (not pickle, not HDF5) holding two
variables: `X`, the images as (32, 32, 3, N) uint8 (row, column, channel, image), and `y`, the
labels as (N, 1) numbers 1..10, where 10 stands for the digit 0. They are read with
scipy.io.loadmat, which decodes data only and runs nothing, after the registry has checked
each file's MD5; the digit 0 becomes label 0, so the labels are the digits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genforge.errors import DataError

PAGE = "http://ufldl.stanford.edu/housenumbers/"
SIDE = 32
CLASSES = [str(d) for d in range(10)]


def _loadmat(path: Path, names: list[str]) -> dict:
    from scipy.io import loadmat  # late: scipy takes a moment to import, and only SVHN needs it here
    try:
        return loadmat(path, variable_names=names)
    except (OSError, ValueError, TypeError, NotImplementedError) as e:
        # NotImplementedError: a MATLAB v7.3 (HDF5) file, which loadmat does not read
        why = " ".join(str(e).split()) or type(e).__name__
        raise DataError(f"{path}: not a readable MATLAB v5 .mat file ({why}); delete it and fetch it again") from None


def count(path: Path) -> int:
    """Images in a .mat file, from its variable headers (scipy.io.whosmat: no pixels read)."""
    from scipy.io import whosmat
    try:
        shapes = {name: shape for name, shape, _ in whosmat(path)}
    except (OSError, ValueError, TypeError, NotImplementedError) as e:
        why = " ".join(str(e).split()) or type(e).__name__
        raise DataError(f"{path}: not a readable MATLAB v5 .mat file ({why}); delete it and fetch it again") from None
    if len(shapes.get("X", ())) != 4:
        raise DataError(f"{path}: has no (32, 32, 3, N) variable X; check that this is an SVHN *_32x32.mat file")
    return int(shapes["X"][3])


def read_mat(path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images (N, 3, 32, 32) uint8, labels (N,) uint8 with 10 -> 0, the class names '0'..'9')."""
    data = _loadmat(path, ["X", "y"])
    if "X" not in data or "y" not in data:
        raise DataError(f"{path}: lacks the variable X or y; check that this is an SVHN *_32x32.mat file")
    x, y = data["X"], np.asarray(data["y"]).reshape(-1)
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (SIDE, SIDE, 3):
        raise DataError(f"{path}: X is {x.dtype} {x.shape}, not the (32, 32, 3, N) uint8 images of SVHN; "
                        "check that this is an SVHN *_32x32.mat file")
    if len(y) != x.shape[3] or not np.isin(y, np.arange(1, 11)).all():
        raise DataError(f"{path}: y is not one label 1..10 per image; check that this is an SVHN *_32x32.mat file")
    images = np.ascontiguousarray(x.transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    labels = (y.astype(np.int64) % 10).astype(np.uint8)  # SVHN writes the digit 0 as 10
    return images, labels, list(CLASSES)
