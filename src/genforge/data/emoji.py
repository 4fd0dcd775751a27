"""Emoji: the 64x64 colour PNGs of the npm packages `emoji-datasource-<vendor>`.

The one colour data set genforge can fetch wherever a package registry is reachable: each
vendor's package (Noto Emoji for `google`, Twemoji for `twitter`) holds about 3,800 emoji
drawn at 64x64 in RGBA, and an `emoji.json` that names each emoji's category.

- Fetching reads the package's metadata from the npm registry at a pinned version, downloads
  the tarball and checks it against its sha512 integrity hash before keeping it (the hash is
  pinned here too, so a tarball already on disk is verified without the network). `npm` is
  not needed.
- Loading reads the PNGs straight from the tarballs (with a progress bar on a terminal),
  composites their transparency onto a background colour, resizes with Lanczos when asked for
  another size, and caches the decoded arrays as .npy beside the tarballs. The images are used
  as a copy-on-write memory map of that file, from the first load on: the next load is instant,
  and the training processes (ranks) of one machine share one copy in the page cache.
- Labels are the emoji's category; each image also keeps its vendor as a style label
  (`ImageSet.styles` / `ImageSet.style_names`).
- Emoji has no official test split: genforge fixes one (`split_of`), by a seeded hash of
  the emoji's code, so that every vendor's drawing of an emoji, and every skin tone of it,
  falls in the same split.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import logging
import os
import tarfile
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from genforge.data.folder import parse_background
from genforge.data.imageset import ImageSet
from genforge.errors import DataError, DataNotFound, UnknownName

log = logging.getLogger(__name__)

EMOJI_VERSION = "16.0.0"  # every vendor's package at this version; a new one changes the data set
NPM_REGISTRY = "https://registry.npmjs.org"  # GENFORGE_NPM_REGISTRY=URL uses a mirror instead
DOWNLOAD_TIMEOUT = 30  # seconds a stalled connection may stay silent; not a limit on the whole download
NATIVE_SIZE = 64  # the packages' img/<vendor>/64/ folder
MAX_SIZE = 4 * NATIVE_SIZE  # larger only blurs, and costs memory
SPLITS = ("train", "test")
TEST_PERCENT = 10
SPLIT_SEED = "genforge-emoji-split-v1"  # changing it moves emoji between train and test
CACHE_FORMAT = 1  # bump when the decoding changes, so old .npy caches are not reused
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Vendor:
    """One vendor's npm package, what its images may be used for, and its pinned tarball hash."""

    package: str
    licence: str
    default: bool  # False: opt-in, only fetched or loaded when named in vendors=
    integrity: str  # the sha512 SRI the registry publishes for package@EMOJI_VERSION


VENDORS: dict[str, Vendor] = {
    "google": Vendor(
        "emoji-datasource-google",
        "Noto Emoji images: Apache License 2.0, Copyright Google Inc. (https://github.com/googlefonts/noto-emoji)",
        True,
        "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A=="),
    "twitter": Vendor(
        "emoji-datasource-twitter",
        "Twemoji images: CC BY 4.0, graphics by Twitter, Inc and other contributors "
        "(https://github.com/jdecked/twemoji)",
        True,
        "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ=="),
    "apple": Vendor(
        "emoji-datasource-apple",
        "Apple images: Copyright Apple Inc., not licensed for commercial use",
        False,
        "sha512-dVYjsK0FnCry9F+PBtnivhG2K0xdwlmqYaSgiUtztUdAGPYiHYhZcVKvNBqC791g2qyEcFNTBO6utg4eQ3uLTw=="),
    "facebook": Vendor(
        "emoji-datasource-facebook",
        "Facebook images: Copyright Facebook, Inc., no clear licence",
        False,
        "sha512-b9ZxJdB7nMWGckH1vyCjPSosaa6MJYuojPPFiQ0LmDIZS8vlG454XKcmTFKrXIMAA72O4MRJMYFhvWI8pjyciQ=="),
}
DEFAULT_VENDORS = tuple(name for name, vendor in VENDORS.items() if vendor.default)

# The categories of emoji.json in the packages' own order (categories.json). "Component" is left
# out: it holds only the five skin-tone swatches, flat squares of colour rather than pictures,
# too few (5 per vendor) to be a class, and the tones already appear on every People & Body emoji.
CATEGORIES = ["Smileys & Emotion", "People & Body", "Animals & Nature", "Food & Drink", "Travel & Places",
              "Activities", "Objects", "Symbols", "Flags"]
EXCLUDED_CATEGORIES = ("Component",)

EMOJI_INFO = {
    "name": "emoji",
    "shape": (3, NATIVE_SIZE, NATIVE_SIZE),
    "classes": list(CATEGORIES),
    "styles": list(VENDORS),
    "default_styles": list(DEFAULT_VENDORS),
    "version": EMOJI_VERSION,
    "splits": {"train": 100 - TEST_PERCENT, "test": TEST_PERCENT},  # percent of emoji, by a seeded hash
    "licence": "; ".join(f"{name}: {vendor.licence}" + ("" if vendor.default else " (opt-in)")
                         for name, vendor in VENDORS.items())
               + "; emoji.json and packaging: MIT, Copyright (c) 2013 Cal Henderson",
    "citation": f"emoji-data by Cal Henderson, https://github.com/iamcal/emoji-data "
                f"(npm packages emoji-datasource-<vendor>@{EMOJI_VERSION})",
    "url": "https://www.npmjs.com/package/emoji-datasource",
}


# ---------------------------------------------------------------------------------------------
# arguments


def check_vendors(vendors) -> tuple[str, ...]:
    """Vendor names as a tuple without repeats; a string may hold several, comma-separated."""
    if isinstance(vendors, str):
        vendors = vendors.split(",")
    names = tuple(dict.fromkeys(str(v).strip().lower() for v in vendors if str(v).strip()))
    if not names:
        raise UnknownName(f"no emoji vendor chosen; choose from {', '.join(VENDORS)}")
    for name in names:
        if name not in VENDORS:
            raise UnknownName(f"unknown emoji vendor '{name}'; known: {', '.join(VENDORS)} "
                              f"(default: {','.join(DEFAULT_VENDORS)})")
    return names


def _check_background(background) -> tuple[int, int, int]:
    """(r, g, b) of a colour name, '#rrggbb', 'R,G,B' or three numbers, as folders read them."""
    try:
        return parse_background(background)
    except DataError:
        pass
    raise DataError(f"background {background!r} is not a colour; give three numbers 0..255 "
                    "(r, g, b) or a name like white or #808080")


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise UnknownName(f"unknown split '{split}' of emoji; known: {', '.join(SPLITS)}")
    return split


def _check_size(size) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 1 <= size <= MAX_SIZE:
        raise DataError(f"emoji size must be a whole number of pixels from 1 to {MAX_SIZE} "
                        f"(the images are {NATIVE_SIZE}x{NATIVE_SIZE}), not {size!r}")
    return int(size)


# ---------------------------------------------------------------------------------------------
# fetching


def _registry():
    # imported late: the data-set registry may import this module to register emoji
    from genforge.data import registry
    return registry


def tarball_path(folder: Path, vendor: str) -> Path:
    """Where a vendor's tarball lies in folder: the name npm gives it."""
    return Path(folder).expanduser() / f"{VENDORS[vendor].package}-{EMOJI_VERSION}.tgz"


def _sri(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return "sha512-" + base64.b64encode(digest.digest()).decode()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _npm_registry() -> str:
    return (os.environ.get("GENFORGE_NPM_REGISTRY") or NPM_REGISTRY).rstrip("/")


_NETWORK_ERRORS = (OSError, http.client.HTTPException, ValueError)  # URLError, HTTPError, timeouts are OSErrors


def _unreachable(vendor: str, url: str, error: BaseException, folder: Path) -> DataNotFound:
    spec = VENDORS[vendor]
    return DataNotFound(f"emoji {vendor}: cannot download {url} ({_one_line(error)}); check the connection "
                        f"to the npm registry or set GENFORGE_NPM_REGISTRY to a mirror, or put "
                        f"{tarball_path(folder, vendor).name} (npm package {spec.package}@{EMOJI_VERSION}) "
                        f"into {folder} by hand")


def _tarball_url(vendor: str, folder: Path, timeout: float) -> str:
    """The tarball URL that the registry publishes for the pinned version, after checking that it
    publishes the pinned integrity hash."""
    spec = VENDORS[vendor]
    url = f"{_npm_registry()}/{spec.package}/{EMOJI_VERSION}"
    log.info("reading %s", url)
    try:
        with urlopen(url, timeout=timeout) as response:
            body = response.read()
    except _NETWORK_ERRORS as e:
        raise _unreachable(vendor, url, e, folder) from None
    try:
        dist = json.loads(body)["dist"]
        tarball, integrity = str(dist["tarball"]), str(dist["integrity"])
    except (ValueError, KeyError, TypeError):
        raise DataError(f"emoji {vendor}: {url} is not npm package metadata with dist.tarball and "
                        "dist.integrity; check GENFORGE_NPM_REGISTRY") from None
    if integrity != spec.integrity:
        raise DataError(f"emoji {vendor}: {url} publishes integrity {integrity[:24]}... for "
                        f"{spec.package}@{EMOJI_VERSION}, not the {spec.integrity[:24]}... genforge pins; "
                        "refusing it: check GENFORGE_NPM_REGISTRY")
    if not tarball.startswith(("https://", "http://")):
        raise DataError(f"emoji {vendor}: {url} names the tarball {tarball!r}, not an http(s) URL; "
                        "check GENFORGE_NPM_REGISTRY")
    return tarball


def _download(vendor: str, url: str, path: Path, timeout: float) -> None:
    """Stream url into a temp file beside path, hashing as it comes; rename it to path only when
    its sha512 is the pinned one. Nothing is left behind on failure."""
    spec, folder = VENDORS[vendor], path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=path.name + ".", suffix=".part")
    except OSError as e:
        raise DataError(f"emoji {vendor}: cannot write into {folder} ({e.strerror or e}); "
                        "choose a folder you can write to") from None
    try:
        digest = hashlib.sha512()
        with os.fdopen(fd, "wb") as out:
            log.info("downloading %s", url)
            try:
                response = urlopen(url, timeout=timeout)
            except _NETWORK_ERRORS as e:
                raise _unreachable(vendor, url, e, folder) from None
            with response:
                while True:
                    try:
                        chunk = response.read(_CHUNK)
                    except _NETWORK_ERRORS as e:
                        raise _unreachable(vendor, url, e, folder) from None
                    if not chunk:
                        break
                    digest.update(chunk)
                    try:
                        out.write(chunk)
                    except OSError as e:
                        raise DataError(f"emoji {vendor}: cannot write {path} ({e.strerror or e}); "
                                        "free some space or choose another folder") from None
        got = "sha512-" + base64.b64encode(digest.digest()).decode()
        if got != spec.integrity:
            raise DataError(f"emoji {vendor}: {url} does not match its published sha512 integrity "
                            f"(got {got[:24]}..., expected {spec.integrity[:24]}...); the download was "
                            "damaged or tampered with and was not kept; try again")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared data folder needs it readable
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _fetch_one(folder: Path, vendor: str, timeout: float) -> Path:
    spec, path = VENDORS[vendor], tarball_path(folder, vendor)
    offline = _registry()._offline()
    if path.is_file():
        if _sri(path) == spec.integrity:
            return path
        if offline:
            raise DataError(f"emoji {vendor}: {path} does not match the sha512 of {spec.package}@"
                            f"{EMOJI_VERSION}; delete it and fetch again without GENFORGE_OFFLINE")
        log.warning("%s does not match the sha512 of %s@%s; downloading it again", path, spec.package,
                    EMOJI_VERSION)
    elif offline:
        raise DataNotFound(f"emoji {vendor}: {path} not found and downloads are off (GENFORGE_OFFLINE is set); "
                           f"unset GENFORGE_OFFLINE to fetch it, or copy {path.name} (npm package "
                           f"{spec.package}@{EMOJI_VERSION}) into {path.parent}")
    _download(vendor, _tarball_url(vendor, path.parent, timeout), path, timeout)
    return path


def fetch_emoji(folder: Path, vendors=DEFAULT_VENDORS, timeout: float = DOWNLOAD_TIMEOUT) -> list[Path]:
    """Make sure each vendor's tarball lies verified in folder; return their paths.

    A tarball already there whose sha512 is the pinned one is kept without asking the
    network. Otherwise the registry's metadata for the pinned version is read, its
    published integrity must equal the pinned one, and the tarball is downloaded into a
    temp file, checked, and only then renamed into place. GENFORGE_OFFLINE=1 refuses to
    download. Opt-in vendors (apple, facebook) are fetched only when named.
    """
    folder = Path(folder).expanduser()
    names = check_vendors(vendors)
    for name in names:
        if not VENDORS[name].default:
            log.warning("emoji %s is opt-in: %s", name, VENDORS[name].licence)
    return [_fetch_one(folder, name, timeout) for name in names]


# ---------------------------------------------------------------------------------------------
# what is in a package


def split_of(code: str) -> str:
    """The fixed split of an emoji, by a seeded hash of its code (for a skin tone, its base
    emoji's code): the same on every machine and for every vendor."""
    digest = hashlib.sha256(f"{SPLIT_SEED}:{code.upper()}".encode()).digest()
    return "test" if int.from_bytes(digest[:8], "big") % 100 < TEST_PERCENT else "train"


@dataclass(frozen=True)
class _Entry:
    order: tuple[int, int]  # (sort_order, skin-tone index): the packages' own order
    code: str  # unified code of this image's emoji, skin tone included
    image: str  # PNG file name in img/<vendor>/64/
    label: int
    split: str


def _entries(emoji_json: bytes, vendor: str, source: Path, skin_tones: bool) -> list[_Entry]:
    """The images of one vendor's package that genforge uses, in the package's order."""
    try:
        listing = json.loads(emoji_json)
        entries = []
        for emoji in listing:
            category = emoji["category"]
            if category in EXCLUDED_CATEGORIES:
                continue
            if category not in CATEGORIES:
                raise DataError(f"{source}: emoji {emoji['unified']} has category '{category}', which "
                                f"genforge does not know; is this emoji-datasource {EMOJI_VERSION}?")
            label, base, order = CATEGORIES.index(category), emoji["unified"], int(emoji["sort_order"])
            forms = [emoji]
            if skin_tones:
                forms += [emoji["skin_variations"][k] for k in sorted(emoji.get("skin_variations") or {})]
            for i, form in enumerate(forms):
                if form.get(f"has_img_{vendor}"):
                    entries.append(_Entry((order, i), form["unified"].upper(), form["image"], label,
                                          split_of(base)))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataError(f"{source}: package/emoji.json is not the emoji list genforge expects "
                        f"({_one_line(e)}); delete the file and fetch it again") from None
    return sorted(entries, key=lambda e: e.order)


def _read_tarball(path: Path, vendor: str, images: bool) -> tuple[bytes, dict[str, bytes]]:
    """emoji.json and (if images) every 64x64 PNG of a vendor's tarball, in one streaming pass
    (gzip cannot seek, and the members need not come in any order)."""
    folder = f"package/img/{vendor}/{NATIVE_SIZE}/"
    listing, pngs = None, {}
    try:
        with tarfile.open(path, "r|gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                if member.name == "package/emoji.json":
                    listing = tar.extractfile(member).read()
                    if not images:
                        break
                elif images and member.name.startswith(folder) and member.name.endswith(".png"):
                    pngs[member.name[len(folder):]] = tar.extractfile(member).read()
    except (OSError, EOFError, tarfile.TarError, zlib.error) as e:
        raise DataError(f"{path}: not a readable npm tarball ({_one_line(e)}); delete it and fetch "
                        "emoji again") from None
    if listing is None:
        raise DataError(f"{path}: holds no package/emoji.json; is this an emoji-datasource package? "
                        "Delete it and fetch emoji again")
    return listing, pngs


def emoji_codes(folder: Path, split: str, vendors=DEFAULT_VENDORS, skin_tones: bool = True) -> list[str]:
    """The unified code (e.g. '1F600') of each image of load_emoji(folder, split, vendors=...,
    skin_tones=...), in the same order: with styles, it finds the same emoji drawn by another
    vendor. Reads only emoji.json; the tarballs must be there (fetch_emoji)."""
    _check_split(split)
    names = check_vendors(vendors)
    rows = []
    for v, name in enumerate(names):
        path = _existing(folder, name)
        listing, _ = _read_tarball(path, name, images=False)
        rows += [(e.order, v, e.code) for e in _entries(listing, name, path, skin_tones) if e.split == split]
    return [code for _, _, code in sorted(rows)]


def _existing(folder: Path, vendor: str) -> Path:
    path = tarball_path(folder, vendor)
    if not path.is_file():
        raise DataNotFound(f"emoji {vendor}: {path} not found; run `genforge data fetch emoji` "
                           "(or fetch_emoji) first")
    return path


# ---------------------------------------------------------------------------------------------
# decoding and the array cache


def composite(png: bytes, size: int, background: tuple[int, int, int]) -> np.ndarray:
    """One PNG as (size, size, 3) uint8: its alpha composited onto background, then resized
    with Lanczos. Compositing comes first so that the colour of transparent pixels (often black
    or garbage) never bleeds into the resized image."""
    with Image.open(io.BytesIO(png)) as im:
        rgba = im.convert("RGBA")  # RGBA, LA and palette PNGs (with their tRNS) alike
    canvas = Image.new("RGBA", rgba.size, (*background, 255))
    rgb = Image.alpha_composite(canvas, rgba).convert("RGB")  # opaque now: dropping alpha loses nothing
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8)


def _decode_all(folder: Path, names: tuple[str, ...], size: int, background, skin_tones: bool,
                progress: bool = False) -> dict:
    """split -> (images (N, 3, size, size) uint8, labels (N,), styles (N,)), emoji-major in the
    packages' order with the vendors of one emoji side by side. progress: a bar per vendor on
    stderr while its PNGs are decoded (tqdm shows it only on a terminal)."""
    rows = {split: [] for split in SPLITS}
    for v, name in enumerate(names):
        path = tarball_path(folder, name)
        log.info("decoding emoji %s from %s", name, path)
        listing, pngs = _read_tarball(path, name, images=True)
        entries = _entries(listing, name, path, skin_tones)
        bar = tqdm(entries, desc=f"decoding {len(entries)} emoji of {name}", unit="img",
                   disable=None if progress else True, leave=False)
        for entry in bar:
            if entry.image not in pngs:
                raise DataError(f"{path}: has no img/{name}/{NATIVE_SIZE}/{entry.image} though its emoji.json "
                                "lists it; delete it and fetch emoji again")
            try:
                pixels = composite(pngs[entry.image], size, background)
            except Exception as e:  # Pillow signals a bad PNG with many exception types
                raise DataError(f"{path}: img/{name}/{NATIVE_SIZE}/{entry.image} is not a readable PNG "
                                f"({_one_line(e)}); delete the tarball and fetch emoji again") from None
            rows[entry.split].append((entry.order, v, pixels, entry.label))
        bar.close()
    out = {}
    for split, items in rows.items():
        items.sort(key=lambda r: (r[0], r[1]))
        images = np.stack([r[2] for r in items]).transpose(0, 3, 1, 2) if items else \
            np.zeros((0, 3, size, size), np.uint8)
        out[split] = (np.ascontiguousarray(images), np.array([r[3] for r in items], np.int64),
                      np.array([r[1] for r in items], np.int64))
    return out


def _cache_paths(folder: Path, names, size: int, background, skin_tones: bool) -> dict[str, tuple[Path, Path]]:
    # keyed by everything that changes the arrays, and by size and mtime of each tarball: a
    # replaced tarball gets a fresh cache entry
    tarballs = [tarball_path(folder, n) for n in names]
    key = json.dumps([CACHE_FORMAT, EMOJI_VERSION, SPLIT_SEED, TEST_PERCENT, size, list(background),
                      list(names), skin_tones,
                      [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in tarballs]])
    stem = f"emoji-{size}px-{'+'.join(names)}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"
    return {split: (folder / f"{stem}-{split}-images.npy", folder / f"{stem}-{split}-labels.npy")
            for split in SPLITS}


def _read_cache(images_path: Path, meta_path: Path, size: int, n_styles: int):
    """(images, labels, styles) of a cache entry, the images as a copy-on-write memory map (the
    convention of folder_cache.py: torch gets a writable array without a copy, and a write
    changes only this process's pages, never the file); None when missing or broken."""
    try:
        images = np.load(images_path, mmap_mode="c", allow_pickle=False)
        meta = np.load(meta_path, allow_pickle=False)  # (N, 2): category, vendor
    except FileNotFoundError:
        return None
    except (OSError, ValueError, EOFError) as e:  # a broken cache is only a slow load
        log.info("ignoring broken emoji cache %s: %s", images_path, e)
        return None
    ok = (images.dtype == np.uint8 and images.ndim == 4 and images.shape[1:] == (3, size, size)
          and meta.dtype == np.int64 and meta.shape == (len(images), 2)
          and (len(meta) == 0 or (meta.min() >= 0 and meta[:, 0].max() < len(CATEGORIES)
                                  and meta[:, 1].max() < n_styles)))
    if not ok:
        log.info("ignoring emoji cache %s: not the arrays expected", images_path)
        return None
    return images, meta[:, 0].copy(), meta[:, 1].copy()


def _write_cache(paths: tuple[Path, Path], arrays) -> bool:
    """Writes one split's entry (each file atomically); False, with a warning, when it cannot."""
    images, labels, styles = arrays
    write = _registry()._write_atomic
    try:
        write(paths[0], lambda f: np.save(f, images, allow_pickle=False))
        write(paths[1], lambda f: np.save(f, np.stack([labels, styles], 1), allow_pickle=False))
    except OSError as e:
        log.warning("cannot write emoji cache in %s (%s); loads stay slow and each process holds its "
                    "own copy of the images", paths[0].parent, e.strerror or e)
        return False
    return True


def load_emoji(folder: Path, split: str, size: int = NATIVE_SIZE, background=(255, 255, 255),
               vendors=DEFAULT_VENDORS, skin_tones: bool = True, progress: bool = True) -> ImageSet:
    """One split of emoji as an ImageSet of (N, 3, size, size) uint8 images.

    labels: the emoji's category (CATEGORIES); styles: the vendor, an index into
    style_names (the vendors asked for, in that order). background: the colour that
    transparency is composited onto, (r, g, b) or a colour name. skin_tones=False keeps
    only each emoji's default (yellow) form: about half the images, and People & Body no
    longer most of them. Missing tarballs are fetched (fetch_emoji) unless GENFORGE_OFFLINE
    is set. Decoded arrays of both splits are cached beside the tarballs on the first load
    (progress: a bar on a terminal while decoding), and the images are a memory map of that
    cache, in memory only when the cache cannot be written.
    """
    _check_split(split)
    size, background, names = _check_size(size), _check_background(background), check_vendors(vendors)
    folder = Path(folder).expanduser()
    if not all(tarball_path(folder, n).is_file() for n in names):
        fetch_emoji(folder, names)
    paths = _cache_paths(folder, names, size, background, skin_tones)
    arrays = _read_cache(*paths[split], size, len(names))
    if arrays is None:
        fetch_emoji(folder, names)  # verifies the tarballs' sha512 before they are decoded
        paths = _cache_paths(folder, names, size, background, skin_tones)  # a re-fetch changes the mtime
        decoded = _decode_all(folder, names, size, background, skin_tones, progress)
        written = {s: _write_cache(paths[s], arrays) for s, arrays in decoded.items()}
        # the entry just written, mapped, so that a first load maps like every later one
        arrays = _read_cache(*paths[split], size, len(names)) if written[split] else None
        if arrays is None:
            arrays = decoded[split]
        del decoded  # the in-memory copies of both splits, unless one is what we return
    images, labels, styles = arrays
    return ImageSet(torch.from_numpy(images), torch.from_numpy(labels), list(CATEGORIES), "emoji",
                    torch.from_numpy(styles), list(names))
