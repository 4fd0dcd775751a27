"""The IDX file format of MNIST-style data sets: a tiny header, then raw bytes.

Header: two zero bytes, a type byte (0x08 = uint8, the only type these data sets use),
a byte with the number of dimensions, then each dimension as a big-endian uint32.
Files are usually gzip-compressed; we look at the bytes, not the name, to tell.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from genforge.errors import DataError

GZIP_MAGIC = b"\x1f\x8b"
UINT8 = 0x08
MAX_HEADER = 4 + 4 * 255  # the dims count is one byte


def _decompress(path: Path, blob: bytes) -> bytes:
    if blob[:2] != GZIP_MAGIC:
        return blob
    try:
        return gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as e:  # gzip reports damage in all three ways
        raise DataError(f"{path}: corrupt gzip file ({e}); delete it and fetch it again") from e


def _parse_header(path: Path, head: bytes) -> tuple[tuple[int, ...], int]:
    """(dims, offset of the data) from the first bytes of an uncompressed IDX file."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0:
        raise DataError(f"{path}: not an IDX file (starts with {head[:4].hex() or 'nothing'}, "
                        "expected 0000 08 nn); check that this is the right file")
    if head[2] != UINT8:
        raise DataError(f"{path}: IDX data type 0x{head[2]:02x} is not supported, only 0x08 (uint8)")
    ndim = head[3]
    offset = 4 + 4 * ndim
    if ndim == 0 or len(head) < offset:
        raise DataError(f"{path}: IDX header is truncated or has no dimensions; delete it and fetch it again")
    return struct.unpack(f">{ndim}I", head[4:offset]), offset


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e


def read_idx(path) -> np.ndarray:
    """The array stored in a uint8 IDX file, gzip or raw, checked against its header."""
    path = Path(path)
    data = _decompress(path, _read_bytes(path))
    dims, offset = _parse_header(path, data[:MAX_HEADER])
    expected, actual = math.prod(dims), len(data) - offset
    if actual != expected:
        kind = "truncated" if actual < expected else "over-long"
        raise DataError(f"{path}: {kind} IDX file: header {dims} needs {expected} data bytes, "
                        f"found {actual}; delete it and fetch it again")
    # copy so the array is writable: torch warns on (and must not write to) read-only buffers
    return np.frombuffer(data, np.uint8, count=expected, offset=offset).reshape(dims).copy()


def read_idx_shape(path) -> tuple[int, ...]:
    """The dims of an IDX file from its header alone, without decoding the data."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == GZIP_MAGIC
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            head = f.read(MAX_HEADER)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: cannot read IDX header ({e}); delete it and fetch it again") from e
    return _parse_header(path, head)[0]


def write_idx(path, array) -> None:
    """Write a uint8 array as a raw (uncompressed) IDX file."""
    array = np.asarray(array)
    if array.dtype != np.uint8 or not 1 <= array.ndim <= 255:
        raise ValueError(f"write_idx takes a uint8 array with 1..255 dims, got {array.dtype} {array.shape}")
    header = bytes([0, 0, UINT8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    Path(path).write_bytes(header + np.ascontiguousarray(array).tobytes())
