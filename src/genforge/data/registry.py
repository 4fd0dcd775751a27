"""Named data sets: where their files may lie, how to fetch them, how to load a split.

Lookup order (first directory holding both files of a split wins):
  data_dir, data_dir/<name>, $GENFORGE_DATA, $GENFORGE_DATA/<name>,
  /usr/share/datasets/<name> (Debian packages), cache_dir()/<name>.
If none has them, the files are downloaded into cache_dir()/<name> unless
GENFORGE_OFFLINE=1. Decoded arrays are cached as .npy so the next load skips gzip.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from genforge.data.idx import read_idx, read_idx_shape
from genforge.data.imageset import ImageSet
from genforge.errors import DataError, DataNotFound, UnknownName

log = logging.getLogger(__name__)

DEBIAN_ROOT = Path("/usr/share/datasets")  # a module constant so tests can point it elsewhere
DOWNLOAD_TIMEOUT = 10  # seconds per URL: a dead mirror should not stall a run for minutes


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    shape: tuple[int, int, int]  # (C, H, W)
    classes: list[str]
    files: dict[str, tuple[str, str]]  # split -> (images file, labels file), without .gz
    md5: dict[str, str]  # file -> md5 of its *uncompressed* bytes, so .gz and raw check alike
    mirrors: list[str]  # base URLs; each serves <file>.gz
    debian_package: str | None = None
    licence: str = ""
    citation: str = ""


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        shape=(1, 28, 28),
        classes=[str(d) for d in range(10)],
        files=_MNIST_FILES,
        md5={
            "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
            "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
            "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
            "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
        },
        mirrors=[
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        licence="CC BY-SA 3.0, Yann LeCun and Corinna Cortes",
        citation="Y. LeCun, C. Cortes, C. J. C. Burges: The MNIST database of handwritten digits, 1998",
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        shape=(1, 28, 28),
        classes=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
        files=_MNIST_FILES,
        # computed from the files of the Debian package dataset-fashion-mnist
        md5={
            "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
            "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
            "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
            "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
        },
        mirrors=["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        debian_package="dataset-fashion-mnist",
        licence="MIT, Zalando SE",
        citation="H. Xiao, K. Rasul, R. Vollgraf: Fashion-MNIST: a Novel Image Dataset for "
                 "Benchmarking Machine Learning Algorithms, arXiv:1708.07747, 2017",
    ),
}


def get_spec(name: str | DatasetSpec) -> DatasetSpec:
    """The spec for a name, forgiving case and '_' for '-' (fashion_mnist, MNIST)."""
    if isinstance(name, DatasetSpec):
        return name
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASETS:
        hint = f" (for a folder of images write folder:{name})" if name and Path(name).is_dir() else ""
        raise UnknownName(f"unknown data set '{name}'{hint}; known: {', '.join(DATASETS)}, or folder:PATH")
    return DATASETS[key]


def _split_files(spec: DatasetSpec, split: str) -> tuple[str, str]:
    if split not in spec.files:
        raise UnknownName(f"unknown split '{split}' of {spec.name}; known: {', '.join(spec.files)}")
    return spec.files[split]


def _env(name: str) -> str | None:
    return os.environ.get(name) or None  # an empty variable counts as unset


def _offline() -> bool:
    return (_env("GENFORGE_OFFLINE") or "0").lower() not in ("0", "false", "no")


def cache_dir() -> Path:
    """Where genforge keeps downloads and decoded arrays."""
    if _env("GENFORGE_CACHE"):
        return Path(_env("GENFORGE_CACHE")).expanduser()
    if _env("XDG_CACHE_HOME"):
        return Path(_env("XDG_CACHE_HOME")).expanduser() / "genforge"
    return Path.home() / ".cache" / "genforge"


def search_dirs(spec: str | DatasetSpec, data_dir=None) -> list[Path]:
    """Directories that may hold the files of a data set, most specific first."""
    spec = get_spec(spec)
    dirs = []
    for root in (data_dir, _env("GENFORGE_DATA")):
        if root:
            root = Path(root).expanduser()
            dirs += [root, root / spec.name]
    dirs += [DEBIAN_ROOT / spec.name, cache_dir() / spec.name]
    return list(dict.fromkeys(dirs))  # data_dir may equal $GENFORGE_DATA; keep order, drop repeats


def _find_file(folder: Path, filename: str) -> Path | None:
    for candidate in (folder / filename, folder / (filename + ".gz")):  # raw first: no gunzip needed
        if candidate.is_file():
            return candidate
    return None


def _find_split(spec: DatasetSpec, split: str, data_dir=None) -> tuple[Path, Path] | None:
    """Both files of a split from the first directory holding both, without downloading."""
    names = _split_files(spec, split)
    for folder in search_dirs(spec, data_dir):
        found = [_find_file(folder, n) for n in names]
        if all(found):
            return found[0], found[1]
    return None


def _write_atomic(path: Path, write) -> None:
    """Write via a temp file in the same directory, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def download(spec: DatasetSpec, dest: Path, files=None) -> list[str]:
    """Fetch the named files (default: all) missing from dest; return one line per failure."""
    files = files or sorted(spec.md5)
    problems, dead = [], set()
    for filename in files:
        if _find_file(dest, filename):
            continue
        for mirror in spec.mirrors:
            if mirror in dead:
                continue
            url = mirror + filename + ".gz"
            log.info("downloading %s", url)
            try:
                with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
                    blob = response.read()
                content = gzip.decompress(blob)
            except (OSError, EOFError, zlib.error, ValueError, http.client.HTTPException) as e:
                dead.add(mirror)  # one failure usually means the mirror is down: skip it for the rest
                problems.append(f"{url}: {e}")
                continue
            if hashlib.md5(content).hexdigest() != spec.md5[filename]:
                problems.append(f"{url}: md5 mismatch")
                continue
            try:
                _write_atomic(dest / (filename + ".gz"), lambda f: f.write(blob))
            except OSError as e:
                problems.append(f"{dest}: cannot write ({e.strerror or e})")
                return problems
            break
    return problems


def _not_found(spec: DatasetSpec, split: str, data_dir, why: str) -> DataNotFound:
    names = " and ".join(f"{n}[.gz]" for n in spec.files[split])
    where = ", ".join(str(d) for d in search_dirs(spec, data_dir))
    apt = f", or run `apt install {spec.debian_package}`" if spec.debian_package else ""
    return DataNotFound(f"{spec.name} {split}: {names} not found in {where} ({why}); put them in one of "
                        f"those, pass --data-dir DIR or set GENFORGE_DATA=DIR{apt}")


def locate(name: str, split: str, data_dir=None) -> tuple[Path, Path]:
    """(images path, labels path) of a split, downloading them if they are nowhere."""
    spec = get_spec(name)
    if data_dir and not Path(data_dir).expanduser().is_dir():
        log.warning("data dir %s does not exist", data_dir)
    found = _find_split(spec, split, data_dir)
    if found:
        return found
    if _offline():
        raise _not_found(spec, split, data_dir, "downloads are off: GENFORGE_OFFLINE is set")
    dest = cache_dir() / spec.name
    problems = download(spec, dest, list(spec.files[split]))
    found = _find_split(spec, split, data_dir)
    if found:
        return found
    raise _not_found(spec, split, data_dir, "download failed: " + ("; ".join(problems) or "no mirror"))


def fetch(name: str, data_dir=None) -> dict[str, tuple[Path, Path]]:
    """Make sure every split is on disk; return split -> (images path, labels path)."""
    spec = get_spec(name)
    return {split: locate(spec.name, split, data_dir) for split in spec.files}


def _check(spec: DatasetSpec, images: np.ndarray, labels: np.ndarray, ipath: Path, lpath: Path) -> None:
    _, h, w = spec.shape
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (h, w):
        raise DataError(f"{ipath}: holds {images.dtype} {images.shape}, expected (N, {h}, {w}) uint8 "
                        f"images of {spec.name}; check that this is the right file")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{lpath}: holds {labels.dtype} {labels.shape}, expected a 1-D uint8 label list; "
                        "check that this is the right file")
    if len(labels) != len(images):
        raise DataError(f"{ipath} holds {len(images)} images but {lpath} holds {len(labels)} labels; "
                        "the two files do not belong together")
    if len(labels) and int(labels.max()) >= len(spec.classes):
        raise DataError(f"{lpath}: label {int(labels.max())} is out of range for the "
                        f"{len(spec.classes)} classes of {spec.name}")


def _cache_paths(spec: DatasetSpec, split: str, ipath: Path, lpath: Path) -> tuple[Path, Path]:
    # keyed by path, size and mtime of the sources: a replaced file gets a fresh cache entry
    key = "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in (ipath, lpath))
    stem = f"{spec.name}-{split}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"
    folder = cache_dir() / "arrays"
    return folder / f"{stem}-images.npy", folder / f"{stem}-labels.npy"


def _load_arrays(spec: DatasetSpec, split: str, ipath: Path, lpath: Path) -> tuple[np.ndarray, np.ndarray]:
    icache, lcache = _cache_paths(spec, split, ipath, lpath)
    try:
        images, labels = np.load(icache, allow_pickle=False), np.load(lcache, allow_pickle=False)
        _check(spec, images, labels, icache, lcache)
        return images, labels
    except FileNotFoundError:
        pass
    except (OSError, ValueError, EOFError, DataError) as e:  # a broken cache is only a slow load
        log.info("ignoring broken array cache %s: %s", icache, e)
    images, labels = read_idx(ipath), read_idx(lpath)
    _check(spec, images, labels, ipath, lpath)
    try:
        for path, array in ((icache, images), (lcache, labels)):
            _write_atomic(path, lambda f: np.save(f, array, allow_pickle=False))
    except OSError as e:
        log.warning("cannot write array cache in %s (%s); loads stay slow", icache.parent, e.strerror or e)
    return images, labels


def load_split(name: str, split: str, data_dir=None) -> ImageSet:
    """One split of a named data set as an ImageSet of (N, 1, H, W) uint8 images."""
    spec = get_spec(name)
    ipath, lpath = locate(spec.name, split, data_dir)
    images, labels = _load_arrays(spec, split, ipath, lpath)
    return ImageSet(torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)),
                    list(spec.classes), spec.name)


def dataset_info(name: str, data_dir=None) -> dict:
    """What genforge knows about a data set and where its files are; reads headers only."""
    spec = get_spec(name)
    found, sizes = None, {}
    for split in spec.files:
        paths = _find_split(spec, split, data_dir)
        sizes[split] = read_idx_shape(paths[0])[0] if paths else None
        if paths and found is None:
            found = str(paths[0].parent)
    return {"name": spec.name, "shape": spec.shape, "classes": list(spec.classes), "found": found,
            "splits": sizes, "licence": spec.licence, "citation": spec.citation}
