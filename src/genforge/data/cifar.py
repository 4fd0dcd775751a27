"""The binary format of CIFAR-10 and CIFAR-100: fixed-size records inside a tar.gz archive.

Each record is the label byte(s) then 3072 pixel bytes: the red plane (32x32, row by row),
then green, then blue. CIFAR-10 records have one label byte; CIFAR-100 records have two
(coarse, fine). Class names are a text file in the archive, one name per line.

Only the "binary version" archives are read: the "python version" is pickled, and genforge
never unpickles a download. The archive is streamed with tarfile, never extracted to disk, with
a progress bar on a terminal while the records are read (the registry then keeps the decoded
arrays in its memory-mapped .npy cache, so this happens once per archive).
"""

from __future__ import annotations

import hashlib
import os
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from tqdm import tqdm

from genforge.errors import DataError

SIDE = 32
PIXELS = 3 * SIDE * SIDE  # bytes of one image: R, G and B planes of 32x32
CHUNK = 1 << 20


def md5_of(path: Path) -> str:
    """The MD5 of a file's bytes, read in chunks (a 170 MB archive never sits in memory twice)."""
    digest = hashlib.md5()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(CHUNK), b""):
                digest.update(block)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from e
    return digest.hexdigest()


def check_md5(path: Path, expected: str) -> None:
    """Refuse an archive whose bytes are not the published ones (a broken download, another file)."""
    actual = md5_of(path)
    if actual != expected:
        raise DataError(f"{path}: MD5 {actual} is not the published {expected}; the archive is damaged "
                        "or another file: delete it and fetch it again")


@dataclass(frozen=True)
class CifarBinary:
    """Where one CIFAR variant keeps its records and names inside its archive.

    members: split -> the record files of that split, in order (matched by base name, so the
    archive's top folder does not matter); label_bytes: label bytes per record; label_index: which
    of them is the label used (CIFAR-100: 1, the fine label); names: the text file of class names.
    """

    members: dict[str, tuple[str, ...]]
    label_bytes: int
    label_index: int
    names: str

    @property
    def record(self) -> int:
        return self.label_bytes + PIXELS

    def _wanted(self, split: str) -> set[str]:
        return set(self.members[split]) | {self.names}

    def _members(self, path: Path, wanted: set[str], contents: bool,
                 progress: bool = False) -> dict[str, bytes | int]:
        """Base name -> bytes (contents=True) or size of each wanted member, in one pass over the
        archive; progress: a bar of the archive's bytes read, on stderr when it is a terminal."""
        found: dict[str, bytes | int] = {}
        try:
            with open(path, "rb") as raw, \
                    tqdm.wrapattr(raw, "read", total=os.fstat(raw.fileno()).st_size, desc=f"reading {path.name}",
                                  disable=None if progress else True, leave=False) as stream, \
                    tarfile.open(fileobj=stream, mode="r:gz") as tar:  # both archives are gzip'd tars
                for member in tar:
                    name = PurePosixPath(member.name).name
                    if name not in wanted or name in found or not member.isfile():
                        continue
                    found[name] = tar.extractfile(member).read() if contents else member.size
                    if len(found) == len(wanted):
                        break  # the rest of the archive need not be inflated
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:  # gzip reports damage in all of these
            why = " ".join(str(e).split()) or type(e).__name__  # one line, whatever tarfile says
            raise DataError(f"{path}: corrupt archive ({why}); delete it and fetch it again") from e
        missing = sorted(wanted - set(found))
        if missing:
            raise DataError(f"{path}: archive lacks {', '.join(missing)}; check that this is the right file")
        return found

    def _records(self, path: Path, member: str, size: int) -> int:
        if size % self.record:
            raise DataError(f"{path}: {member} is truncated: {size} bytes is not a whole number of "
                            f"{self.record}-byte records; delete it and fetch it again")
        return size // self.record

    def count(self, path: Path, split: str) -> int:
        """Images in a split, from the sizes in the tar headers (the records are not decoded)."""
        sizes = self._members(path, set(self.members[split]), contents=False)
        return sum(self._records(path, m, sizes[m]) for m in self.members[split])

    def read(self, path: Path, split: str, progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """(images (N, 3, 32, 32) uint8, labels (N,) uint8, class names) of one split; progress:
        a bar while the archive is read (tqdm shows it only on a terminal)."""
        blobs = self._members(path, self._wanted(split), contents=True, progress=progress)
        images, labels = [], []
        for member in self.members[split]:
            n = self._records(path, member, len(blobs[member]))
            records = np.frombuffer(blobs[member], np.uint8).reshape(n, self.record)
            labels.append(records[:, self.label_index])
            images.append(records[:, self.label_bytes:].reshape(n, 3, SIDE, SIDE))
        names = blobs[self.names].decode("utf-8", errors="replace").splitlines()
        classes = [line.strip() for line in names if line.strip()]
        # concatenate copies: the arrays are writable and own their memory
        return np.concatenate(images), np.concatenate(labels), classes


CIFAR10 = CifarBinary(
    members={"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test": ("test_batch.bin",)},
    label_bytes=1, label_index=0, names="batches.meta.txt")

CIFAR100 = CifarBinary(
    members={"train": ("train.bin",), "test": ("test.bin",)},
    label_bytes=2, label_index=1, names="fine_label_names.txt")
