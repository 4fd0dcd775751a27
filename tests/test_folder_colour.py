"""Colour image folders: transparency composited onto a background, grey expanded to RGB,
non-square pictures centre-cropped, and the memory-mapped cache of a decoded folder."""

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genforge.data import folder as folder_module
from genforge.data import load_dataset, load_folder, load_slice
from genforge.data.registry import cache_dir
from genforge.errors import DataError


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENFORGE_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def decodes(monkeypatch):
    """Counts the pictures decoded (read_image calls) from now on."""
    calls = []
    real = folder_module.read_image

    def counting(path, *args, **kwargs):
        calls.append(Path(path).name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(folder_module, "read_image", counting)
    return calls


def pixel(data, i, y, x):
    return data.images[i, :, y, x].tolist()


# --- transparency ------------------------------------------------------------------

def half_transparent_rgba(path: Path) -> None:
    """20x20: left half fully transparent red, right half black at alpha 128."""
    a = np.zeros((20, 20, 4), np.uint8)
    a[:, :10] = (255, 0, 0, 0)
    a[:, 10:] = (0, 0, 0, 128)
    Image.fromarray(a, "RGBA").save(path)


def test_rgba_is_composited_on_white_by_default(tmp_path):
    half_transparent_rgba(tmp_path / "a.png")
    data = load_folder(tmp_path, image_size=20)
    assert data.shape == (3, 20, 20)
    assert pixel(data, 0, 5, 2) == [255, 255, 255]  # transparent: the background, not the hidden red
    right = pixel(data, 0, 5, 15)  # half-covered white: half way to black
    assert right[0] == right[1] == right[2] and abs(right[0] - 127) <= 1


@pytest.mark.parametrize("background, expected_left, expected_right", [
    ("black", [0, 0, 0], [0, 0, 0]),
    ("#0000ff", [0, 0, 255], [0, 0, 127]),
    ((200, 100, 50), [200, 100, 50], [100, 50, 25]),
])
def test_rgba_on_a_chosen_background(tmp_path, background, expected_left, expected_right):
    half_transparent_rgba(tmp_path / "a.png")
    data = load_folder(tmp_path, image_size=20, background=background)
    assert pixel(data, 0, 5, 2) == expected_left
    assert all(abs(a - b) <= 1 for a, b in zip(pixel(data, 0, 5, 15), expected_right))


def test_palette_image_with_a_transparent_index(tmp_path):
    im = Image.new("P", (20, 20), 0)
    im.putpalette([0, 255, 0, 255, 0, 0] + [0] * 762)  # index 0 green (transparent), 1 red
    im.paste(1, (10, 0, 20, 20))
    im.save(tmp_path / "p.png", transparency=0)
    data = load_folder(tmp_path, image_size=20)
    assert pixel(data, 0, 3, 3) == [255, 255, 255]
    assert pixel(data, 0, 3, 15) == [255, 0, 0]


def test_grey_with_alpha(tmp_path):
    a = np.zeros((20, 20, 2), np.uint8)
    a[:, :10] = (0, 0)      # transparent black
    a[:, 10:] = (100, 255)  # opaque grey
    Image.fromarray(a, "LA").save(tmp_path / "la.png")
    grey = load_folder(tmp_path, image_size=20)  # grey on a grey (white) background stays 1 channel
    assert grey.shape == (1, 20, 20)
    assert pixel(grey, 0, 0, 0) == [255] and pixel(grey, 0, 0, 19) == [100]
    red = load_folder(tmp_path, image_size=20, background="red")  # grey over red is colour
    assert red.shape == (3, 20, 20)
    assert pixel(red, 0, 0, 0) == [255, 0, 0] and pixel(red, 0, 0, 19) == [100, 100, 100]


def test_unknown_background_is_one_clear_error(tmp_path):
    half_transparent_rgba(tmp_path / "a.png")
    for bad in ("not-a-colour", (1, 2), (0, 0, 300)):
        with pytest.raises(DataError, match="unknown background colour"):
            load_folder(tmp_path, background=bad)


# --- grey, crop, resize ------------------------------------------------------------

def test_grey_image_in_a_three_channel_load_has_equal_channels(tmp_path):
    ramp = np.tile(np.arange(0, 240, 12, dtype=np.uint8), (20, 1))
    Image.fromarray(ramp, "L").save(tmp_path / "g.png")
    rgb = load_dataset(f"folder:{tmp_path}", image_size=20, channels=3)
    one = load_folder(tmp_path, image_size=20, channels=1)
    assert rgb.shape == (3, 20, 20) and one.shape == (1, 20, 20)
    assert torch.equal(rgb.images[:, 0], rgb.images[:, 1]) and torch.equal(rgb.images[:, 1], rgb.images[:, 2])
    assert torch.equal(rgb.images[:, :1], one.images)
    assert one.images[0, 0, 0].tolist() == ramp[0].tolist()


def marked_landscape(path: Path, width=60, height=40) -> None:
    """White, a red stripe down the left border, a black 4x4 marker in the centre."""
    a = np.full((height, width, 3), 255, np.uint8)
    a[:, :5] = (255, 0, 0)
    cy, cx = height // 2, width // 2
    a[cy - 2:cy + 2, cx - 2:cx + 2] = 0
    Image.fromarray(a).save(path)


def test_non_square_image_is_centre_cropped_not_squashed(tmp_path):
    marked_landscape(tmp_path / "wide.png")
    same = load_folder(tmp_path, image_size=40)  # the 40x40 centre, unscaled
    assert same.shape == (3, 40, 40)
    assert pixel(same, 0, 20, 0) == [255, 255, 255]  # the stripe (x < 5 of 60) is cropped away
    assert pixel(same, 0, 20, 20) == [0, 0, 0] and pixel(same, 0, 17, 20) == [255, 255, 255]
    small = load_folder(tmp_path, image_size=20)  # shrunk after cropping
    x = small.images[0].float()
    assert (x[0] - x[1]).abs().max() < 8  # no red left anywhere, not even as a tint
    dark = 255 - x.mean(0)
    ys, xs = torch.meshgrid(torch.arange(20.0), torch.arange(20.0), indexing="ij")
    centre = ((dark * ys).sum() / dark.sum(), (dark * xs).sum() / dark.sum())
    assert abs(centre[0] - 9.5) < 0.3 and abs(centre[1] - 9.5) < 0.3  # the marker stays centred
    spread_y = (dark * (ys - centre[0]) ** 2).sum() / dark.sum()
    spread_x = (dark * (xs - centre[1]) ** 2).sum() / dark.sum()
    assert abs(spread_x / spread_y - 1) < 0.05  # still square: squashing 60 to 20 wide would narrow it
    assert x[:, 9:11, 9:11].max() < 40  # and still dark in the middle


def test_portrait_image_is_centre_cropped_too(tmp_path):
    a = np.full((60, 40), 255, np.uint8)
    a[:10] = 0  # a dark band at the top: cropped away
    a[28:32, 18:22] = 0
    Image.fromarray(a, "L").save(tmp_path / "tall.png")
    data = load_folder(tmp_path, image_size=40)
    assert pixel(data, 0, 0, 20) == [255] and pixel(data, 0, 20, 20) == [0]


# --- the memory-mapped cache ---------------------------------------------------------

def write_classes(root: Path) -> None:
    for i, (cls, colour) in enumerate([("cats", (200, 10, 10)), ("cats", (190, 20, 20)), ("dogs", (10, 10, 200))]):
        (root / cls).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (24 + i, 20), colour).save(root / cls / f"{i}.png")


def cache_files() -> list[str]:
    folder = cache_dir() / "folders"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def mapped_file(tensor: torch.Tensor) -> str | None:
    """The file mapped at the tensor's first byte, per /proc/self/maps (None: not a file mapping)."""
    address = tensor.data_ptr()
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        low, high = (int(v, 16) for v in fields[0].split("-"))
        if low <= address < high:
            return fields[5] if len(fields) > 5 else None
    return None


def test_cache_is_built_once_and_reused_without_decoding(tmp_path, decodes):
    root = tmp_path / "pets"
    write_classes(root)
    first = load_dataset(f"folder:{root}", image_size=16)
    assert len(decodes) == 3
    assert [n for n in cache_files() if n.endswith(".npy")] and [n for n in cache_files() if n.endswith(".json")]
    assert not [n for n in cache_files() if n.endswith(".part")]
    again = load_dataset(f"folder:{root}", image_size=16)
    assert len(decodes) == 3  # nothing decoded the second time
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert again.classes == ["cats", "dogs"] and again.labels.tolist() == [0, 0, 1]
    assert torch.equal(again.images, load_folder(root, image_size=16).images)  # same as decoding it now
    assert again.images.is_contiguous() and again.shape == (3, 16, 16)


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs /proc to see memory maps")
def test_cached_images_are_a_memory_map_of_the_cache_file(tmp_path):
    root = tmp_path / "pets"
    write_classes(root)
    load_dataset(f"folder:{root}", image_size=16)
    data = load_dataset(f"folder:{root}", image_size=16)
    source = mapped_file(data.images)
    assert source is not None and Path(source).parent == cache_dir() / "folders" and source.endswith(".npy")
    tail = load_slice(f"folder:{root}:train:1-2", image_size=16)  # a slice is a view, not a copy
    assert mapped_file(tail.images) == source and torch.equal(tail.images, data.images[1:])


def test_cache_is_rebuilt_when_a_file_changes_or_is_added_or_removed(tmp_path, decodes):
    root = tmp_path / "pets"
    write_classes(root)
    spec = f"folder:{root}"
    load_dataset(spec, image_size=16)
    assert len(decodes) == 3

    file = root / "dogs" / "2.png"
    Image.new("RGB", (30, 20), (0, 255, 0)).save(file)  # new content (and size)
    stat = file.stat()
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    changed = load_dataset(spec, image_size=16)
    assert len(decodes) == 6 and changed.images[2, :, 8, 8].tolist() == [0, 255, 0]

    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 9_000_000_000))  # touched only
    load_dataset(spec, image_size=16)
    assert len(decodes) == 9

    Image.new("RGB", (20, 20), (5, 5, 5)).save(root / "dogs" / "3.png")
    added = load_dataset(spec, image_size=16)
    assert len(decodes) == 13 and len(added) == 4 and added.labels.tolist() == [0, 0, 1, 1]

    (root / "cats" / "0.png").unlink()
    removed = load_dataset(spec, image_size=16)
    assert len(decodes) == 16 and len(removed) == 3
    assert len([n for n in cache_files() if n.endswith(".npy")]) == 1  # replaced entries are deleted

    load_dataset(spec, image_size=16, background="black")  # other options: another entry
    assert len(decodes) == 19 and len([n for n in cache_files() if n.endswith(".json")]) == 2


def test_interrupted_build_leaves_no_half_cache(tmp_path, monkeypatch):
    root = tmp_path / "pets"
    write_classes(root)
    real, calls = folder_module.read_image, []

    def interrupted(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(path, *args, **kwargs)

    monkeypatch.setattr(folder_module, "read_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(f"folder:{root}", image_size=16)
    assert cache_files() == []
    monkeypatch.setattr(folder_module, "read_image", real)
    assert len(load_dataset(f"folder:{root}", image_size=16)) == 3
    assert not [n for n in cache_files() if n.endswith(".part")]


def test_cached_folder_keeps_skipping_unreadable_files(tmp_path, caplog, decodes):
    root = tmp_path / "mixed"
    root.mkdir()
    for name in ("a.png", "c.png"):
        Image.new("RGB", (20, 20), (9, 9, 9)).save(root / name)
    (root / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n but then nothing")
    with caplog.at_level(logging.WARNING, logger="genforge.data.folder"):
        first = load_dataset(f"folder:{root}", image_size=8, channels=3)
        second = load_dataset(f"folder:{root}", image_size=8, channels=3)
    assert len(first) == len(second) == 2 and torch.equal(first.images, second.images)
    assert len(decodes) == 3  # b.png failed once, then the cache remembers it
    assert sum("skipped 1 unreadable" in r.getMessage() for r in caplog.records) == 2

    (root / "a.png").unlink()
    (root / "c.png").unlink()
    with pytest.raises(DataError, match="no readable"):
        load_dataset(f"folder:{root}", image_size=8)
    assert not [n for n in cache_files() if n.endswith(".part")]


def test_cache_that_cannot_be_written_is_one_clear_error(tmp_path, monkeypatch):
    Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / "a.png")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("GENFORGE_CACHE", str(blocker))
    with pytest.raises(DataError, match="cannot write the decoded images"):
        load_dataset(f"folder:{tmp_path}", image_size=8)


def test_rgb_with_a_transparent_colour_key(tmp_path):
    a = np.zeros((10, 10, 3), np.uint8)
    a[:, 5:] = (10, 20, 30)
    Image.fromarray(a).save(tmp_path / "key.png", transparency=(0, 0, 0))  # PNG tRNS: black is see-through
    data = load_folder(tmp_path, image_size=10)
    assert pixel(data, 0, 0, 0) == [255, 255, 255] and pixel(data, 0, 0, 9) == [10, 20, 30]


def test_a_rebuild_removes_parts_that_a_killed_build_left_long_ago(tmp_path):
    root = tmp_path / "pets"
    write_classes(root)
    load_dataset(f"folder:{root}", image_size=16)
    stem = next(n for n in cache_files() if n.endswith(".json"))[:-len(".json")]
    folder = cache_dir() / "folders"
    stale, fresh = folder / f"{stem}-dead.npy.0.part", folder / f"{stem}-busy.npy.0.part"
    stale.write_bytes(b"left by a build killed two days ago")
    fresh.write_bytes(b"a build running in another process")
    os.utime(stale, (0, os.stat(stale).st_mtime - 2 * 86400))
    Image.new("RGB", (20, 20), (5, 5, 5)).save(root / "dogs" / "3.png")  # forces a rebuild
    assert len(load_dataset(f"folder:{root}", image_size=16)) == 4
    assert not stale.exists() and fresh.exists()
