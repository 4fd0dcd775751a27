"""A decoded image folder kept on disk as a memory-mapped uint8 array: decoded once, so later
runs start at once, and usable when it is larger than memory (pages are read as batches need them).

One entry per folder and options, in <cache>/folders/: `<key>.json`, the index, and the array it
names, `<key>-<token>.npy`, of shape (N, C, H, W): the ImageSet layout, so the array is wrapped
as it is, never permuted or copied. The key hashes the folder's absolute path and the options
(size, channels, background). The index holds every file's path, size and modification time,
the options and the labels; an entry is used only while all of them still match, and rebuilt
when a file changed, was added or removed. Writing is atomic: the array is built under a
`.part` name and renamed, and the index, renamed last, is what makes the entry exist, so an
interrupted build leaves nothing that a later run would read.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import secrets
import time
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap

from genforge.data.folder import decode_folder, folder_labels, report_skipped
from genforge.data.registry import cache_dir
from genforge.errors import DataError

log = logging.getLogger(__name__)

FORMAT = 1  # bump when decoding changes, so entries built the old way are rebuilt
SUBDIR = "folders"
COPY_CHUNK = 1024  # images moved at once when an unreadable file leaves a gap to close
STALE_SECONDS = 24 * 3600


def _signature(root: Path, files: list[Path]) -> list[list]:
    """[relative path, size, mtime in ns] of each file: what must not change for an entry to hold."""
    rows = []
    for file in files:
        try:
            st = file.stat()
        except OSError:  # removed since it was listed: it will not match, and decoding skips it
            rows.append([file.relative_to(root).as_posix(), -1, -1])
            continue
        rows.append([file.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return rows


def index_path(root: Path, options: dict) -> Path:
    """Where the index of `root` read with `options` lives."""
    text = json.dumps({"root": str(root.resolve()), **options}, sort_keys=True)
    return cache_dir() / SUBDIR / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"


def _read_index(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _open(path: Path) -> np.ndarray:
    # copy-on-write: the tensor on top is writable (torch warns on read-only arrays), yet a
    # write would only ever change this process's private pages, never the cache file
    return np.load(path, mmap_mode="c", allow_pickle=False)


def _reuse(path: Path, options: dict, signature: list[list]) -> tuple[np.ndarray, dict] | None:
    index = _read_index(path)
    if index is None or index.get("options") != options or index.get("files") != signature:
        return None
    try:
        array = _open(path.parent / index["array"])
    except (OSError, ValueError, KeyError):
        return None
    if list(array.shape) != index.get("shape") or array.dtype != np.uint8:
        return None
    return array, index


def _reserve(path: Path) -> None:
    """Claims the disk space of a new array now, so a full disk is an error here, not a crash
    (SIGBUS) in the middle of writing through the memory map."""
    if not hasattr(os, "posix_fallocate"):
        return
    with open(path, "r+b") as f:
        try:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise
            # a file system without fallocate: go on, as numpy alone would


def _remove_stale_parts(folder: Path, stem: str) -> None:
    """Deletes what a build of this entry killed outright (no chance to clean up) left a day or
    more ago; younger parts may belong to a build still running in another process."""
    for part in folder.glob(f"{stem}-*.part"):
        try:
            if time.time() - part.stat().st_mtime > STALE_SECONDS:
                part.unlink()
        except OSError:
            pass


def _build(path: Path, root: Path, files: list[Path], size: int, channels: int | None,
           background: tuple[int, int, int], options: dict, signature: list[list]) -> tuple[np.ndarray, dict]:
    folder = path.parent
    name = f"{path.stem}-{secrets.token_hex(4)}.npy"
    temporary: list[Path] = []  # removed at the end, whatever happens

    def make_array(shape: tuple[int, ...]) -> np.ndarray:
        if shape[0] == 0:  # nothing readable: the caller raises before this is stored
            return np.empty(shape, np.uint8)
        part = folder / f"{name}.{len(temporary)}.part"
        temporary.append(part)
        array = open_memmap(part, mode="w+", dtype=np.uint8, shape=shape)
        _reserve(part)
        return array

    log.info("%s: decoding %d image file(s) into the cache %s", root, len(files), folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(folder, path.stem)
        array, kept, used = decode_folder(files, size, channels, background, make_array, progress=True)
        if not kept:
            report_skipped(root, files, kept)  # raises: nothing to cache
        if len(kept) < len(array):  # some file did not decode: close the gap at the end
            compact = make_array((len(kept), *array.shape[1:]))
            for i in range(0, len(kept), COPY_CHUNK):
                compact[i:i + COPY_CHUNK] = array[i:min(i + COPY_CHUNK, len(kept))]
            array = compact
        array.flush()
        built = Path(array.filename)
        del array
        temporary.append(folder / name)  # until the index names it
        os.replace(built, folder / name)
        result = _open(folder / name)  # opened before the index exists: no other build can delete it first
        labels, classes = folder_labels(root, files, kept)
        index = {"format": FORMAT, "root": str(root.resolve()), "options": options, "files": signature,
                 "array": name, "shape": list(result.shape), "channels": used, "kept": kept,
                 "labels": labels, "classes": classes}
        previous = _read_index(path)
        written = folder / f"{name}.json.part"
        temporary.append(written)
        written.write_text(json.dumps(index))
        os.replace(written, path)
        temporary.remove(folder / name)  # committed: the index names it now
    except OSError as e:
        raise DataError(f"cannot write the decoded images of {root} into the cache {folder} ({e}); "
                        "free some space there or set GENFORGE_CACHE to another folder") from None
    finally:
        for part in temporary:
            part.unlink(missing_ok=True)
    if previous and previous.get("array") not in (None, name):
        try:  # the entry it replaces; a process still reading it keeps its mapping on POSIX
            (folder / Path(previous["array"]).name).unlink(missing_ok=True)
        except OSError:
            pass
    return result, index


def cached_folder(root: Path, files: list[Path], size: int, channels: int | None,
                  background: tuple[int, int, int]) -> tuple[np.ndarray, list[int], list[int] | None,
                                                             list[str] | None]:
    """The folder's images as a memory-mapped uint8 (N, C, H, W) array, from the cache when no
    file has changed since it was built, else decoded now (with a progress bar on a terminal);
    with the indices of the files it holds, their labels and the class names."""
    options = {"format": FORMAT, "image_size": size, "channels": channels, "background": list(background)}
    signature = _signature(root, files)
    path = index_path(root, options)
    found = _reuse(path, options, signature)
    if found is None:
        found = _build(path, root, files, size, channels, background, options, signature)
    else:
        log.info("%s: %d decoded image(s) from the cache %s", root, found[1]["shape"][0], path)
    array, index = found
    report_skipped(root, files, index["kept"])
    return array, index["kept"], index["labels"], index["classes"]
