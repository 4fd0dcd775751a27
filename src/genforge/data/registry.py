"""Named data sets: where their files may lie, how to fetch them, how to load a split.

A data set is one DatasetSpec: its image shape, its classes, the files that make each split,
and the reader of its format, which finds, downloads and decodes those files:
IdxReader (MNIST-style IDX files), CifarReader (the CIFAR binary archives), MatReader (SVHN's
MATLAB files) and LoaderReader (any data set with a `load(folder, split)` function, such as
emoji and CelebA).

Lookup order (first directory holding every file of a split wins):
  data_dir, data_dir/<name>, $GENFORGE_DATA, $GENFORGE_DATA/<name>,
  /usr/share/datasets/<name> (Debian packages), cache_dir()/<name>.
If none has them, the files are downloaded into cache_dir()/<name> unless
GENFORGE_OFFLINE=1 or the data set has no download (CelebA). Decoded arrays are cached as .npy
in cache_dir()/arrays, and the images are used as a copy-on-write memory map of that file: the
next load skips gzip, pages are read as batches need them, and the training processes (ranks)
of one machine share one copy of the file in the page cache instead of each holding its own.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from genforge.data import celeba, emoji, svhn
from genforge.data.cifar import CIFAR10, CIFAR100, CifarBinary, check_md5
from genforge.data.idx import read_idx, read_idx_shape
from genforge.data.imageset import ImageSet
from genforge.errors import DataError, DataNotFound, UnknownName

log = logging.getLogger(__name__)

DEBIAN_ROOT = Path("/usr/share/datasets")  # a module constant so tests can point it elsewhere
DOWNLOAD_TIMEOUT = 10  # seconds per URL: a dead mirror should not stall a run for minutes

# (images, labels, class names) as a reader decodes them: uint8 images in the reader's stored
# layout (IDX: (N, H, W); the others: (N, C, H, W)) and uint8 labels (N,)
Decoded = tuple[np.ndarray, np.ndarray, list[str]]


class Reader:
    """How the files of one format are found, downloaded and decoded; one subclass per format.

    The registry does the rest alike for every format: the lookup order, the not-found
    message, the .npy cache of decoded arrays and the checks of shape, labels and classes.
    """

    classes_in_files = False  # True: the class names come from the files and are cached with the arrays
    can_download = True  # False: genforge cannot download the files; the user must put them in place
    takes: frozenset[str] = frozenset()  # loading options the reader applies itself: "size", "background"

    def wanted(self, spec: DatasetSpec, split: str) -> str:
        """The files of a split, as the not-found message names them."""
        return " and ".join(spec.files[split])

    def find(self, spec: DatasetSpec, split: str, folder: Path) -> tuple[Path, ...] | None:
        """The paths of a split's files if folder holds all of them, else None."""
        paths = tuple(folder / name for name in spec.files[split])
        return paths if all(p.is_file() for p in paths) else None

    def fetch(self, spec: DatasetSpec, split: str, dest: Path) -> list[str]:
        """Download a split's files into dest; one line per problem (an empty list: all went well)."""
        raise NotImplementedError

    def read(self, spec: DatasetSpec, split: str, paths: tuple[Path, ...]) -> Decoded:
        """Decode a split from the paths `find` returned."""
        raise NotImplementedError

    def load(self, spec: DatasetSpec, split: str, paths: tuple[Path, ...], **options) -> ImageSet:
        """The split as an ImageSet: decoded by `read`, checked, and kept in the .npy cache.
        options: those named in `takes` (none here)."""
        return _image_set(spec, *_load_arrays(spec, split, paths))

    def count(self, spec: DatasetSpec, split: str, paths: tuple[Path, ...]) -> int | None:
        """The number of images of a split, cheaply (headers only) where the format allows; else None."""
        return None

    def stored_shape(self, spec: DatasetSpec) -> tuple[int, ...]:
        """The shape of one image as `read` returns it and the cache stores it."""
        return spec.shape

    def where_from(self, spec: DatasetSpec, split: str) -> str:
        """A hint for the not-found message on where the files come from."""
        return ""

    def describe(self, spec: DatasetSpec, folder: Path) -> dict:
        """What `data info` says beyond the spec about the copy found in folder: "notes", a
        {heading: text} dict, and "classes" where the copy decides them (CelebA's attributes)."""
        return {}


class IdxReader(Reader):
    """MNIST-style: a split is an images file and a labels file, each IDX, raw or gzip (.gz)."""

    def wanted(self, spec, split):
        return " and ".join(f"{n}[.gz]" for n in spec.files[split])

    def find(self, spec, split, folder):
        found = [_find_file(folder, n) for n in spec.files[split]]
        return tuple(found) if all(found) else None

    def fetch(self, spec, split, dest):
        return download(spec, dest, list(spec.files[split]))

    def read(self, spec, split, paths):
        ipath, lpath = paths
        return read_idx(ipath), read_idx(lpath), list(spec.classes)

    def count(self, spec, split, paths):
        return read_idx_shape(paths[0])[0]

    def stored_shape(self, spec):
        return spec.shape[1:]  # IDX images are (N, H, W): one channel, added on loading

    def where_from(self, spec, split):
        return f", or run `apt install {spec.debian_package}`" if spec.debian_package else ""


@dataclass(frozen=True)
class CifarReader(Reader):
    """A CIFAR binary archive (one .tar.gz holds every split), checked against its published MD5
    before it is decoded; the records and class names are read by genforge.data.cifar."""

    binary: CifarBinary
    classes_in_files = True

    def fetch(self, spec, split, dest):
        return [problem for name in spec.files[split] for problem in _download_file(spec, name, dest)]

    def read(self, spec, split, paths):
        (archive,) = paths
        check_md5(archive, spec.md5[archive.name])
        return self.binary.read(archive, split)

    def count(self, spec, split, paths):
        return self.binary.count(paths[0], split)

    def where_from(self, spec, split):
        return "; it is published at " + ", ".join(m + n for m in spec.mirrors[:1] for n in spec.files[split])


@dataclass(frozen=True)
class MatReader(Reader):
    """One MATLAB v5 .mat file per split (SVHN), checked against its MD5 before it is decoded
    by genforge.data.svhn with scipy.io.loadmat (data only: never pickle)."""

    def fetch(self, spec, split, dest):
        return [problem for name in spec.files[split] for problem in _download_file(spec, name, dest)]

    def read(self, spec, split, paths):
        (path,) = paths
        check_md5(path, spec.md5[path.name])
        return svhn.read_mat(path)

    def count(self, spec, split, paths):
        return svhn.count(paths[0])

    def where_from(self, spec, split):
        return "; it is published at " + ", ".join(m + n for m in spec.mirrors[:1] for n in spec.files[split])


@dataclass(frozen=True)
class LoaderReader(Reader):
    """A data set read by functions of its own module, for formats such as emoji's npm tarballs.

    loader(folder, split) returns the split as an ImageSet, or as (images uint8 (N, H, W, C),
    labels (N,), class names); folder is the first directory of the lookup order that holds
    every file of spec.files[split]. The loader keeps its own cache, if any: the registry's .npy
    cache is for the formats it decodes itself. fetcher(folder) puts those files into folder,
    checking their integrity, and raises DataError when it cannot; None: no download.
    finder(folder) -> the file or folder directly in folder that holds the data, or None, replaces the check for
    spec.files (CelebA: a zip or a folder of images); `wanted_text` and `hint` are then what the
    not-found message names and adds. Options in `takes` are passed on to the loader.
    """

    loader: Callable[..., ImageSet | tuple]
    fetcher: Callable[[Path], object] | None = None
    counter: Callable[[Path, str], int] | None = None  # images in a split, without decoding them
    finder: Callable[[Path], Path | None] | None = None
    wanted_text: str = ""
    hint: str = ""
    describer: Callable[[Path], dict] | None = None
    takes: frozenset[str] = frozenset()

    @property
    def can_download(self) -> bool:
        return self.fetcher is not None

    def wanted(self, spec, split):
        return self.wanted_text or super().wanted(spec, split)

    def where_from(self, spec, split):
        return self.hint

    def find(self, spec, split, folder):
        if self.finder is None:
            return super().find(spec, split, folder)
        found = self.finder(folder)
        return (found,) if found is not None else None

    def count(self, spec, split, paths):
        return self.counter(paths[0].parent, split) if self.counter else None

    def describe(self, spec, folder):
        return self.describer(folder) if self.describer else {}

    def fetch(self, spec, split, dest):
        if self.fetcher is None:
            return ["no download for this data set"]
        try:
            self.fetcher(dest)
        except DataError as e:
            return [str(e)]
        return []

    def load(self, spec, split, paths, **options):
        out = self.loader(paths[0].parent, split, **options)
        if isinstance(out, ImageSet):
            return out
        images, labels, classes = out
        images, labels, classes = np.asarray(images), np.asarray(labels), [str(c) for c in classes]
        if images.ndim == 4:  # (N, H, W, C) -> (N, C, H, W), the layout of every ImageSet
            images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
        if labels.dtype.kind in "ui" and (labels.size == 0 or int(labels.max()) < 256):
            labels = labels.astype(np.uint8)
        _check(spec, images, labels, classes, paths[0], paths[-1])
        return _image_set(spec, images, labels, classes)


IDX = IdxReader()


@dataclass(frozen=True)
class DatasetSpec:
    """A named data set: what its images are, which files make each split, and which reader reads them.

    classes: the class names genforge shows before the data is found; where the reader reads
    names from the files (CIFAR, emoji) those are used, and their number must match (an empty
    list here: any number).
    """

    name: str
    shape: tuple[int, int, int]  # (C, H, W)
    classes: list[str]
    files: dict[str, tuple[str, ...]]  # split -> the files that make it (IDX: images, labels; without .gz)
    md5: dict[str, str]  # IDX: md5 of each file's *uncompressed* bytes, so .gz and raw check alike;
    #                      archives: md5 of the archive's bytes, as published
    mirrors: list[str]  # base URLs; IDX: each serves <file>.gz; archives: <file>
    debian_package: str | None = None
    licence: str = ""
    citation: str = ""
    reader: Reader = field(default=IDX)


_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_CIFAR_PAGE = "https://www.cs.toronto.edu/~kriz/"  # cifar.html there publishes the archives and MD5s
_CIFAR_LICENCE = "no licence stated; the authors ask that the report below be cited"
_CIFAR_CITATION = ("A. Krizhevsky: Learning Multiple Layers of Features from Tiny Images, "
                   "technical report, University of Toronto, 2009")
# the fine labels, in the order of fine_label_names.txt (the archive's own list is what loading uses)
_CIFAR100_CLASSES = """
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree
pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea
seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table
tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman
worm""".split()

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
    "cifar10": DatasetSpec(
        name="cifar10",
        shape=(3, 32, 32),
        classes=["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
        files={"train": ("cifar-10-binary.tar.gz",), "test": ("cifar-10-binary.tar.gz",)},
        md5={"cifar-10-binary.tar.gz": "c32a1d4ab5d03f1284b67883e8d87530"},  # published on the page below
        mirrors=[_CIFAR_PAGE],
        licence=_CIFAR_LICENCE,
        citation=_CIFAR_CITATION,
        reader=CifarReader(CIFAR10),
    ),
    "cifar100": DatasetSpec(
        name="cifar100",
        shape=(3, 32, 32),
        classes=_CIFAR100_CLASSES,
        files={"train": ("cifar-100-binary.tar.gz",), "test": ("cifar-100-binary.tar.gz",)},
        md5={"cifar-100-binary.tar.gz": "03b5dce01913d631647c71ecec9e9cb8"},
        mirrors=[_CIFAR_PAGE],
        licence=_CIFAR_LICENCE,
        citation=_CIFAR_CITATION,
        reader=CifarReader(CIFAR100),
    ),
    # The colour set any machine with the npm registry can have (emoji.py): the default vendors'
    # 64x64 PNGs, straight from their sha512-checked tarballs; the other vendors are opt-in
    # through emoji.load_emoji(vendors=...) because of their licences.
    "emoji": DatasetSpec(
        name="emoji",
        shape=emoji.EMOJI_INFO["shape"],
        classes=list(emoji.CATEGORIES),
        files={split: tuple(emoji.tarball_path(Path(), v).name for v in emoji.DEFAULT_VENDORS)
               for split in ("train", "test")},
        md5={},  # checked by sha512 against the npm registry's published integrity (emoji.py)
        mirrors=[],
        licence=emoji.EMOJI_INFO["licence"],
        citation=emoji.EMOJI_INFO["citation"],
        reader=LoaderReader(emoji.load_emoji, emoji.fetch_emoji,
                            lambda folder, split: len(emoji.emoji_codes(folder, split)),
                            takes=frozenset({"background"})),
    ),
    # CelebA's aligned photos, centre 140x140 resized to 64x64 (celeba.py); never downloaded:
    # no stable public mirror exists, so the not-found message says where to get and put them.
    "celeba64": DatasetSpec(
        name="celeba64",
        shape=(3, celeba.NATIVE_SIZE, celeba.NATIVE_SIZE),
        classes=[],  # the copy decides: an attribute's two classes with list_attr_celeba.txt, else none
        files={split: (celeba.ZIP_NAME,) for split in celeba.SPLITS},
        md5={},
        mirrors=[],
        licence=celeba.CELEBA_INFO["licence"],
        citation=celeba.CELEBA_INFO["citation"],
        reader=LoaderReader(
            celeba.load_celeba, counter=celeba.count, finder=celeba.find, describer=celeba.describe,
            wanted_text=f"{celeba.ZIP_NAME} or an {celeba.FOLDER_NAME}/ folder of its .jpg images",
            hint=f"; genforge cannot download CelebA (it has no stable public mirror): get {celeba.ZIP_NAME} "
                 f"(\"Align&Cropped Images\", with list_eval_partition.txt and list_attr_celeba.txt if you "
                 f"want the official split and labels) from {celeba.PAGE} and put it there",
            takes=frozenset({"size"})),
    ),
    "svhn": DatasetSpec(
        name="svhn",
        shape=(3, svhn.SIDE, svhn.SIDE),
        classes=list(svhn.CLASSES),
        files={"train": ("train_32x32.mat",), "test": ("test_32x32.mat",)},
        # the MD5s torchvision pins for these files (the SVHN page publishes none)
        md5={"train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
             "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3"},
        mirrors=[svhn.PAGE],
        licence="for non-commercial use only, as the SVHN page states",
        citation="Y. Netzer, T. Wang, A. Coates, A. Bissacco, B. Wu, A. Y. Ng: Reading Digits in Natural "
                 "Images with Unsupervised Feature Learning, NIPS Workshop on Deep Learning and "
                 "Unsupervised Feature Learning, 2011",
        reader=MatReader(),
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


def _split_files(spec: DatasetSpec, split: str) -> tuple[str, ...]:
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


def _find_split(spec: DatasetSpec, split: str, data_dir=None) -> tuple[Path, ...] | None:
    """The files of a split from the first directory holding all of them, without downloading."""
    _split_files(spec, split)
    for folder in search_dirs(spec, data_dir):
        found = spec.reader.find(spec, split, folder)
        if found:
            return found
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
    """Fetch the named IDX files (default: all) missing from dest; return one line per failure."""
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


def _download_file(spec: DatasetSpec, filename: str, dest: Path) -> list[str]:
    """Fetch one file as published (no .gz added) unless dest has it, checking the MD5 of its bytes
    while it streams to a temp file; one line per failed mirror, none once one mirror served it."""
    if (dest / filename).is_file():
        return []
    problems = []
    for mirror in spec.mirrors:
        url = mirror + filename
        log.info("downloading %s", url)
        try:
            _write_atomic(dest / filename, lambda f: _stream_checked(url, f, spec.md5[filename]))
        except (OSError, EOFError, ValueError, http.client.HTTPException) as e:
            problems.append(f"{url}: {e}")
            continue
        return []
    return problems


def _stream_checked(url: str, out, md5: str) -> None:
    """Copy a URL's bytes into an open file; ValueError when they are not the expected ones."""
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
        for block in iter(lambda: response.read(1 << 20), b""):
            digest.update(block)
            out.write(block)
    if digest.hexdigest() != md5:
        raise ValueError("md5 mismatch")


def _not_found(spec: DatasetSpec, split: str, data_dir, why: str) -> DataNotFound:
    names = spec.reader.wanted(spec, split)
    where = ", ".join(str(d) for d in search_dirs(spec, data_dir))
    hint = spec.reader.where_from(spec, split)
    return DataNotFound(f"{spec.name} {split}: {names} not found in {where} ({why}); put them in one of "
                        f"those, pass --data-dir DIR or set GENFORGE_DATA=DIR{hint}")


def locate(name: str, split: str, data_dir=None) -> tuple[Path, ...]:
    """The files of a split (IDX: images path, labels path), downloading them if they are nowhere."""
    spec = get_spec(name)
    if data_dir and not Path(data_dir).expanduser().is_dir():
        log.warning("data dir %s does not exist", data_dir)
    found = _find_split(spec, split, data_dir)
    if found:
        return found
    if not spec.reader.can_download:
        raise _not_found(spec, split, data_dir, "genforge cannot download it")
    if _offline():
        raise _not_found(spec, split, data_dir, "downloads are off: GENFORGE_OFFLINE is set")
    dest = cache_dir() / spec.name
    problems = spec.reader.fetch(spec, split, dest)
    found = _find_split(spec, split, data_dir)
    if found:
        return found
    raise _not_found(spec, split, data_dir, "download failed: " + ("; ".join(problems) or "no mirror"))


def fetch(name: str, data_dir=None) -> dict[str, tuple[Path, ...]]:
    """Make sure every split is on disk; return split -> its files (IDX: images path, labels path)."""
    spec = get_spec(name)
    return {split: locate(spec.name, split, data_dir) for split in spec.files}


def _check(spec: DatasetSpec, images: np.ndarray, labels: np.ndarray, classes: list[str],
           ipath: Path, lpath: Path) -> None:
    shape = spec.reader.stored_shape(spec)
    if images.dtype != np.uint8 or images.ndim != 1 + len(shape) or images.shape[1:] != shape:
        raise DataError(f"{ipath}: holds {images.dtype} {images.shape}, expected (N, {', '.join(map(str, shape))}) "
                        f"uint8 images of {spec.name}; check that this is the right file")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataError(f"{lpath}: holds {labels.dtype} {labels.shape}, expected a 1-D uint8 label list; "
                        "check that this is the right file")
    if len(labels) != len(images):
        raise DataError(f"{ipath} holds {len(images)} images but {lpath} holds {len(labels)} labels; "
                        "the two files do not belong together")
    if spec.classes and len(classes) != len(spec.classes):
        raise DataError(f"{lpath}: names {len(classes)} classes, but {spec.name} has {len(spec.classes)}; "
                        "check that this is the right file")
    if len(labels) and int(labels.max()) >= len(classes):
        raise DataError(f"{lpath}: label {int(labels.max())} is out of range for the "
                        f"{len(classes)} classes of {spec.name}")


def _cache_paths(spec: DatasetSpec, split: str, paths: tuple[Path, ...]) -> tuple[Path, Path, Path]:
    # keyed by path, size and mtime of the sources: a replaced file gets a fresh cache entry
    key = "|".join(f"{p.resolve()}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)
    stem = f"{spec.name}-{split}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"
    folder = cache_dir() / "arrays"
    return folder / f"{stem}-images.npy", folder / f"{stem}-labels.npy", folder / f"{stem}-classes.npy"


def _mapped(path: Path) -> np.ndarray:
    """A cached .npy as a memory map in copy-on-write mode ("c", as folder_cache.py opens its
    arrays): torch gets a writable array without a copy, and a write would change only this
    process's private pages, never the file that other processes map."""
    return np.load(path, mmap_mode="c", allow_pickle=False)


def _read_cached(spec: DatasetSpec, icache: Path, lcache: Path, ccache: Path) -> Decoded | None:
    """The cached arrays of a split (images mapped, labels and names in memory: they are small),
    or None when the cache lacks them or they are broken (a broken cache is only a slow load)."""
    try:
        images, labels = _mapped(icache), np.load(lcache, allow_pickle=False)
        classes = ([str(c) for c in np.load(ccache, allow_pickle=False)] if spec.reader.classes_in_files
                   else list(spec.classes))
        _check(spec, images, labels, classes, icache, lcache)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError, DataError) as e:
        log.info("ignoring broken array cache %s: %s", icache, e)
        return None
    return images, labels, classes


def _load_arrays(spec: DatasetSpec, split: str, paths: tuple[Path, ...]) -> Decoded:
    """Decoded arrays of a split: the images memory-mapped from the .npy cache, else decoded
    from the files, cached, and then mapped from the cache just written (so a first run maps
    too); in memory only when the cache cannot be written."""
    icache, lcache, ccache = _cache_paths(spec, split, paths)
    found = _read_cached(spec, icache, lcache, ccache)
    if found is not None:
        return found
    images, labels, classes = spec.reader.read(spec, split, paths)
    _check(spec, images, labels, classes, paths[0], paths[-1])
    arrays = [(icache, images), (lcache, labels)]
    if spec.reader.classes_in_files:  # names as a unicode array: no pickle needed to store or load them
        arrays.append((ccache, np.array(classes, dtype=str)))
    try:
        for path, array in arrays:
            _write_atomic(path, lambda f: np.save(f, array, allow_pickle=False))
    except OSError as e:
        log.warning("cannot write array cache in %s (%s); loads stay slow and each process holds "
                    "its own copy of the images", icache.parent, e.strerror or e)
        return images, labels, classes
    return _read_cached(spec, icache, lcache, ccache) or (images, labels, classes)


def _image_set(spec: DatasetSpec, images: np.ndarray, labels: np.ndarray, classes: list[str]) -> ImageSet:
    images = torch.from_numpy(images)
    if images.ndim == 3:  # IDX stores (N, H, W): one channel
        images = images.unsqueeze(1)
    return ImageSet(images, torch.from_numpy(labels.astype(np.int64)), classes, spec.name)


def load_split(name: str, split: str, data_dir=None, **options) -> ImageSet:
    """One split of a named data set as an ImageSet of (N, C, H, W) uint8 images.

    options: loading options that the data set's reader applies itself (`takes`): `size`
    (CelebA decodes at that size from its photos) and `background` (emoji's transparency)."""
    spec = get_spec(name)
    unknown = sorted(set(options) - spec.reader.takes)
    if unknown:
        raise DataError(f"{spec.name} does not take the option {unknown[0]}; it takes "
                        f"{', '.join(sorted(spec.reader.takes)) or 'none'}")
    return spec.reader.load(spec, split, locate(spec.name, split, data_dir), **options)


def dataset_info(name: str, data_dir=None) -> dict:
    """What genforge knows about a data set and where its files are; reads headers only."""
    spec = get_spec(name)
    found, sizes = None, {}
    for split in spec.files:
        paths = _find_split(spec, split, data_dir)
        sizes[split] = spec.reader.count(spec, split, paths) if paths else None
        if paths and found is None:
            found = str(paths[0].parent)
    about = spec.reader.describe(spec, Path(found)) if found else {}
    return {"name": spec.name, "shape": spec.shape, "classes": about.get("classes", list(spec.classes)),
            "found": found, "splits": sizes, "licence": spec.licence, "citation": spec.citation,
            "notes": about.get("notes", {}), "takes": sorted(spec.reader.takes)}
