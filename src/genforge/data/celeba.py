"""CelebA at 64x64 (`celeba64`): the aligned face photos, centre-cropped and shrunk once.

CelebA has no stable public mirror (its page links to Google Drive and Baidu folders that
refuse scripted downloads), so genforge never downloads it: the user puts the aligned images,
`img_align_celeba.zip` as published or the `img_align_celeba/` folder it unpacks to, into one
of the places genforge looks for data (registry.py), and the not-found message says so.

- Every photo (178x218) is cut to its centre 140x140 square, the crop most CelebA-64 work
  uses, and resized to 64x64 (or the size asked for) with PIL's Lanczos filter: an
  antialiasing filter whose support widens with the shrink factor (140 -> 64 is 2.19x), so no
  detail finer than the new pixel grid folds back as aliasing; of PIL's antialiasing filters it
  keeps the most of what the grid can hold (BOX, plain averaging, blurs more at a non-integer
  factor), and it is the filter the image-folder loader uses, so a folder of the same photos
  gives the same pixels. A tensor interpolate (bilinear without antialiasing) would alias.
- The decoded images are written once, with a progress bar, into a memory-mapped uint8 file
  in genforge's cache (`<cache>/celeba/`), ordered by split, so a split is a slice of the map
  (no copy) and a later run reads nothing but the index. The entry is reused while the
  source (the zip's size and time, or every file of the folder's) and the partition and
  attribute files are unchanged, and rebuilt when any of them changes.
- Splits: train, valid and test as `list_eval_partition.txt` (the official partition: 162,770,
  19,867 and 19,962 images) says when that file lies beside the images; otherwise a seeded
  hash of the file name (SPLIT_SEED) puts 10% in valid and 10% in test, the same on every machine.
- Labels: where `list_attr_celeba.txt` lies beside the images, one of its 40 binary attributes
  is the class label (`Smiling` by default: close to balanced, 48% of the images, and a visible
  expression; `attribute=` picks another, such as `Male` or `Eyeglasses`); without that file
  the images have no labels.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from genforge.data.imageset import ImageSet
from genforge.errors import DataError, UnknownName

log = logging.getLogger(__name__)

ZIP_NAME = "img_align_celeba.zip"
FOLDER_NAME = "img_align_celeba"
PARTITION = "list_eval_partition.txt"
ATTRIBUTES = "list_attr_celeba.txt"
AUX_FOLDERS = ("", "Eval", "Anno")  # beside the images, or the sub-folders of the Google Drive layout
PAGE = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CROP = 140  # the centre square cut from each 178x218 photo before resizing
NATIVE_SIZE = 64
SPLITS = ("train", "valid", "test")
SPLIT_SEED = "genforge-celeba-split-v1"  # changing it moves images between the seeded splits
SEEDED_PERCENT = {"valid": 10, "test": 10}  # about the official partition's 9.8% and 9.9%
DEFAULT_ATTRIBUTE = "Smiling"
CACHE_FORMAT = 1  # bump when decoding changes, so entries built the old way are rebuilt
SUBDIR = "celeba"

CELEBA_INFO = {
    "licence": "for non-commercial research only, under the CelebA agreement on its page "
               f"({PAGE}); the photos' copyright stays with their owners",
    "citation": "Z. Liu, P. Luo, X. Wang, X. Tang: Deep Learning Face Attributes in the Wild, ICCV 2015",
}


# ---------------------------------------------------------------------------------------------
# where the images are


def find_source(folder: Path) -> Path | None:
    """The images in folder: the `img_align_celeba/` folder when it holds .jpg files, else
    `img_align_celeba.zip`; None when folder has neither."""
    folder = Path(folder).expanduser()
    unpacked = _images_dir(folder / FOLDER_NAME)
    if unpacked is not None:
        return unpacked
    archive = folder / ZIP_NAME
    return archive if archive.is_file() else None


def find(folder: Path) -> Path | None:
    """The entry directly in folder that holds the images (`img_align_celeba/` or the zip), for
    the registry's lookup order; None when folder has neither."""
    source = find_source(folder)
    if source is None:
        return None
    folder = Path(folder).expanduser()
    return source if source.parent == folder else folder / FOLDER_NAME


def _images_dir(path: Path) -> Path | None:
    """The folder that holds the .jpg files: path itself, or path/img_align_celeba when the zip
    was unpacked into a folder of the same name; None when neither holds any."""
    for candidate in (path, path / FOLDER_NAME):
        if candidate.is_dir() and any(p.suffix.lower() == ".jpg" for p in candidate.iterdir()):
            return candidate
    return None


def _data_folder(source: Path) -> Path:
    """The folder of the lookup order that holds the source (where the text files lie too)."""
    folder = source.parent
    return folder.parent if folder.name == FOLDER_NAME else folder


def _aux(source: Path, name: str) -> Path | None:
    """A text file of the data set (partition, attributes) beside the images, if there."""
    root = _data_folder(source)
    places = [root / sub / name for sub in AUX_FOLDERS] + [source / name if source.is_dir() else root / name]
    return next((p for p in places if p.is_file()), None)


def _is_image(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return (name.lower().endswith(".jpg") and not any(p.startswith(".") for p in parts)
            and "__MACOSX" not in parts)


def list_images(source: Path) -> list[str]:
    """The file names (000001.jpg, ...) of the images in a zip or folder, sorted."""
    if source.is_dir():
        return sorted(p.name for p in source.iterdir() if _is_image(p.name) and p.is_file())
    return sorted(_members(source))


def _members(archive: Path) -> dict[str, str]:
    """Base name -> member name of every .jpg in the zip (the zip's top folder does not matter)."""
    try:
        with zipfile.ZipFile(archive) as z:
            names = [info.filename for info in z.infolist() if not info.is_dir() and _is_image(info.filename)]
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise DataError(f"{archive}: not a readable zip archive ({_one_line(e)}); delete it and "
                        "download img_align_celeba.zip again") from None
    return {PurePosixPath(n).name: n for n in names}


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# ---------------------------------------------------------------------------------------------
# splits and labels


def seeded_split(name: str) -> str:
    """The split of an image when there is no official partition, by a seeded hash of its name."""
    bucket = int.from_bytes(hashlib.sha256(f"{SPLIT_SEED}:{name}".encode()).digest()[:8], "big") % 100
    if bucket < SEEDED_PERCENT["test"]:
        return "test"
    return "valid" if bucket < SEEDED_PERCENT["test"] + SEEDED_PERCENT["valid"] else "train"


def read_partition(path: Path) -> dict[str, str]:
    """File name -> split, from list_eval_partition.txt (lines `000001.jpg 0`: 0 train, 1 valid, 2 test)."""
    out = {}
    for number, line in enumerate(_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
            raise DataError(f"{path}:{number}: expected a file name and 0, 1 or 2 (train, valid, test), "
                            "as in list_eval_partition.txt; check that this is the right file")
        out[fields[0]] = SPLITS[int(fields[1])]
    return out


def read_attributes(path: Path) -> tuple[list[str], dict[str, np.ndarray]]:
    """(the attribute names, file name -> 0/1 per attribute) from list_attr_celeba.txt: a count,
    a line of names, then one line per image of its name and -1 or 1 per attribute."""
    lines = _lines(path)
    if len(lines) < 2:
        raise DataError(f"{path}: too short for list_attr_celeba.txt (a count, the names, then one line "
                        "per image); check that this is the right file")
    names = lines[1].split()
    rows = {}
    for number, line in enumerate(lines[2:], 3):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != len(names) + 1 or any(v not in ("1", "-1") for v in fields[1:]):
            raise DataError(f"{path}:{number}: expected a file name and {len(names)} values of 1 or -1, "
                            "as in list_attr_celeba.txt; check that this is the right file")
        rows[fields[0]] = np.array([v == "1" for v in fields[1:]], np.uint8)
    return names, rows


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


@dataclass(frozen=True)
class Layout:
    """Which image goes to which split, in the order the cache stores them."""

    order: list[str]  # file names, split by split (SPLITS order), sorted by name within a split
    splits: dict[str, tuple[int, int]]  # split -> [start, stop) in order
    official: bool  # True: from list_eval_partition.txt; False: the seeded split


def layout(source: Path, names: list[str]) -> Layout:
    """The split of every image: the official partition where its file is beside the images."""
    path = _aux(source, PARTITION)
    if path is not None:
        partition = read_partition(path)
        unlisted = [n for n in names if n not in partition]
        if unlisted:
            raise DataError(f"{path} does not list {len(unlisted)} of the images, e.g. {unlisted[0]}; "
                            "it belongs to other images: remove it to use the seeded split")
        split_of = partition.__getitem__
    else:
        split_of = seeded_split
    groups = {s: [] for s in SPLITS}
    for name in names:
        groups[split_of(name)].append(name)
    order, splits = [], {}
    for s in SPLITS:
        splits[s] = (len(order), len(order) + len(groups[s]))
        order += groups[s]
    return Layout(order, splits, path is not None)


# ---------------------------------------------------------------------------------------------
# decoding


def crop_resize(im: Image.Image, size: int) -> np.ndarray:
    """(size, size, 3) uint8: the centre CROP x CROP square of a photo (its centre square if
    the photo is smaller) resized with Lanczos (see the module docstring for why)."""
    im = im.convert("RGB")
    side = min(CROP, im.width, im.height)
    left, top = (im.width - side) // 2, (im.height - side) // 2  # 178x218: (19, 39)
    im = im.crop((left, top, left + side, top + side))
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.uint8)


class _Opener:
    """Opens the images of a zip or folder by file name, one at a time."""

    def __init__(self, source: Path):
        self.source = source
        self.zip = zipfile.ZipFile(source) if source.is_file() else None
        self.members = _members(source) if self.zip else None

    def pixels(self, name: str, size: int) -> np.ndarray:
        where = f"{self.source}: {name}" if self.zip else str(self.source / name)
        try:
            if self.zip:  # read whole: Pillow seeks, and seeking in a deflated member re-inflates it
                with Image.open(io.BytesIO(self.zip.read(self.members[name]))) as im:
                    return crop_resize(im, size)
            with Image.open(self.source / name) as im:
                return crop_resize(im, size)
        except Exception as e:  # Pillow and zipfile signal a bad image with many exception types
            raise DataError(f"{where} is not a readable JPEG ({_one_line(e)}); replace it, or download "
                            "img_align_celeba.zip again") from None

    def close(self) -> None:
        if self.zip:
            self.zip.close()


# ---------------------------------------------------------------------------------------------
# the memory-mapped cache


def _stat(path: Path | None) -> list | None:
    if path is None:
        return None
    st = path.stat()
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def signature(source: Path) -> dict:
    """What must not change for a cache entry to hold: the source (the zip's size and time, or
    a digest of every image file's name, size and time) and the partition and attribute files."""
    if source.is_file():
        images = _stat(source)
    else:
        digest = hashlib.sha256()
        for name in list_images(source):
            st = (source / name).stat()
            digest.update(f"{name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
        images = [str(source.resolve()), digest.hexdigest()]
    return {"images": images, "partition": _stat(_aux(source, PARTITION)),
            "attributes": _stat(_aux(source, ATTRIBUTES))}


def _index_path(source: Path, size: int) -> Path:
    from genforge.data.registry import cache_dir  # late: the registry imports this module
    text = json.dumps({"source": str(source.resolve()), "size": size, "format": CACHE_FORMAT}, sort_keys=True)
    return cache_dir() / SUBDIR / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.json"


def _reuse(path: Path, sig: dict) -> tuple[np.ndarray, np.ndarray | None, dict] | None:
    from genforge.data.folder_cache import _open, _read_index
    index = _read_index(path)
    if index is None or index.get("format") != CACHE_FORMAT or index.get("signature") != sig:
        return None
    try:
        images = _open(path.parent / index["array"])
        attrs = _open(path.parent / index["attributes_array"]) if index.get("attributes_array") else None
    except (OSError, ValueError, KeyError):
        return None
    if list(images.shape) != index.get("shape") or images.dtype != np.uint8:
        return None
    if attrs is not None and attrs.shape != (len(images), len(index.get("attribute_names", []))):
        return None
    return images, attrs, index


def _build(path: Path, source: Path, size: int, sig: dict,
           progress: bool) -> tuple[np.ndarray, np.ndarray | None, dict]:
    from numpy.lib.format import open_memmap

    from genforge.data.folder_cache import _open, _read_index, _remove_stale_parts, _reserve
    names = list_images(source)
    if not names:
        raise DataError(f"{source}: holds no .jpg images; give the img_align_celeba.zip or "
                        "img_align_celeba/ folder of CelebA's aligned images")
    plan = layout(source, names)
    attr_path = _aux(source, ATTRIBUTES)
    attr_names, attr_rows = read_attributes(attr_path) if attr_path else ([], {})
    if attr_path:
        unlisted = [n for n in plan.order if n not in attr_rows]
        if unlisted:
            raise DataError(f"{attr_path} does not list {len(unlisted)} of the images, e.g. {unlisted[0]}; "
                            "it belongs to other images: remove it to load them without labels")
    folder, token = path.parent, secrets.token_hex(4)
    name, attrs_name = f"{path.stem}-{token}.npy", f"{path.stem}-{token}-attributes.npy"
    temporary = [folder / f"{name}.part", folder / name, folder / attrs_name, folder / f"{name}.json.part"]
    log.info("%s: decoding %d images into the cache %s", source, len(names), folder)
    opener = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_parts(folder, path.stem)
        array = open_memmap(temporary[0], mode="w+", dtype=np.uint8, shape=(len(names), 3, size, size))
        _reserve(temporary[0])
        opener = _Opener(source)
        bar = tqdm(plan.order, desc=f"decoding {len(names)} CelebA images", unit="img",
                   disable=None if progress else True, leave=False)
        for i, image in enumerate(bar):
            array[i] = opener.pixels(image, size).transpose(2, 0, 1)
        bar.close()
        array.flush()
        del array
        os.replace(temporary[0], folder / name)
        if attr_path:
            matrix = np.stack([attr_rows[n] for n in plan.order])
            np.save(folder / attrs_name, matrix, allow_pickle=False)
        images = _open(folder / name)
        attrs = _open(folder / attrs_name) if attr_path else None
        index = {"format": CACHE_FORMAT, "signature": sig, "array": name, "shape": list(images.shape),
                 "splits": {s: list(r) for s, r in plan.splits.items()}, "official": plan.official,
                 "attributes_array": attrs_name if attr_path else None, "attribute_names": attr_names}
        previous = _read_index(path)
        temporary[3].write_text(json.dumps(index))
        os.replace(temporary[3], path)  # the entry exists from here on
        temporary = [temporary[0], temporary[3]]
    except OSError as e:
        raise DataError(f"cannot write the decoded CelebA images into the cache {folder} ({e}); "
                        "free some space there or set GENFORGE_CACHE to another folder") from None
    finally:
        if opener is not None:
            opener.close()
        for part in temporary:
            part.unlink(missing_ok=True)
    for old in ("array", "attributes_array"):  # the arrays of the entry this one replaces
        if previous and previous.get(old) and previous[old] not in (name, attrs_name):
            (folder / Path(previous[old]).name).unlink(missing_ok=True)
    return images, attrs, index


def cached(source: Path, size: int, progress: bool = True) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """(images (N, 3, size, size) uint8 memory map, attributes (N, 40) 0/1 or None, the index),
    from the cache when the source is unchanged, else decoded now."""
    sig = signature(source)
    path = _index_path(source, size)
    found = _reuse(path, sig)
    if found is None:
        return _build(path, source, size, sig, progress)
    log.info("%s: %d decoded images from the cache %s", source, found[2]["shape"][0], path)
    return found


# ---------------------------------------------------------------------------------------------
# the loader the registry calls


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= CROP:
        raise DataError(f"CelebA image size must be a whole number of pixels from 1 to {CROP} "
                        f"(the centre crop's side), not {size!r}")
    return int(size)


def _source(folder: Path) -> Path:
    source = find_source(folder)
    if source is None:
        raise DataError(f"{folder}: holds neither {FOLDER_NAME}/ with .jpg images nor {ZIP_NAME}; "
                        f"download the aligned images from {PAGE}")
    return source


def load_celeba(folder: Path, split: str, size: int = NATIVE_SIZE, attribute: str | None = DEFAULT_ATTRIBUTE,
                progress: bool = True) -> ImageSet:
    """One split (train, valid or test) of CelebA as (N, 3, size, size) uint8 images: the
    centre 140x140 of each aligned photo, resized with Lanczos.

    folder holds img_align_celeba.zip or img_align_celeba/ (and, optionally, list_eval_partition.txt
    and list_attr_celeba.txt). `attribute`: the column of list_attr_celeba.txt that is the class
    label (0: without it, 1: with it); None, or no attribute file, gives images without labels.
    The images are a slice of a memory map in genforge's cache, decoded on the first load.
    """
    if split not in SPLITS:
        raise UnknownName(f"unknown split '{split}' of celeba64; known: {', '.join(SPLITS)}")
    size = _check_size(size)
    images, attrs, index = cached(_source(Path(folder).expanduser()), size, progress)
    start, stop = index["splits"][split]
    labels, classes = None, None
    if attribute is not None and attrs is not None:
        names = index["attribute_names"]
        if attribute not in names:
            raise UnknownName(f"unknown CelebA attribute '{attribute}'; known: {', '.join(names)}")
        labels = torch.from_numpy(np.asarray(attrs[start:stop, names.index(attribute)], dtype=np.int64))
        classes = [f"not {attribute}", attribute]
    return ImageSet(torch.from_numpy(images[start:stop]), labels, classes, "celeba64")


def count(folder: Path, split: str) -> int:
    """Images in a split, from the file list and partition alone (nothing is decoded)."""
    source = _source(Path(folder).expanduser())
    start, stop = layout(source, list_images(source)).splits[split]
    return stop - start


def describe(folder: Path) -> dict:
    """What `genforge data info celeba64` says about the copy in folder: where its images are,
    its split and its labels ("notes"), and its classes."""
    source = _source(Path(folder).expanduser())
    partition, attributes = _aux(source, PARTITION), _aux(source, ATTRIBUTES)
    split = (f"the official partition ({partition})" if partition else
             f"seeded: {PARTITION} not found beside the images, so a hash of each file name seeded "
             f"with {SPLIT_SEED} puts {SEEDED_PERCENT['valid']}% in valid and {SEEDED_PERCENT['test']}% in test")
    labels = (f"the attribute {DEFAULT_ATTRIBUTE} from {attributes} (from Python, attribute= picks another "
              "of its columns)" if attributes else f"none: {ATTRIBUTES} not found beside the images")
    classes = [f"not {DEFAULT_ATTRIBUTE}", DEFAULT_ATTRIBUTE] if attributes else []
    return {"notes": {"source": str(source), "split": split, "labels": labels}, "classes": classes}
