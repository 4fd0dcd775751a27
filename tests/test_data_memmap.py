"""Named data sets are memory-mapped from their decoded .npy cache (issue 31: image sets larger
than memory, one copy per machine however many training processes read it).

Where an ImageSet's pixels live is read from the kernel's own table, /proc/<pid>/maps: a mapped
set's tensor points into a mapping of the cache file (path and inode), while an in-memory copy
points into anonymous memory. The archives are the small real-format ones of test_cifar.py and
test_emoji.py; nothing touches the network.
"""

import errno
import io
import logging
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from genforge.data import emoji, load_dataset, load_split, registry
from genforge.data.idx import write_idx
from test_celeba import expected, write_zip
from test_cifar import C10, cifar10_archive, planes, use_archive
from test_background import install_stand_in_emoji

pytestmark = [
    pytest.mark.usefixtures("isolated_data"),  # conftest.py: no cache, network or Debian root
    pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads the Linux /proc/<pid>/maps table"),
]


def mapping_of(address: int, maps: str) -> tuple[str, int]:
    """(file, inode) of the mapping that holds address in a /proc/<pid>/maps text; the inode is 0
    for anonymous memory (the heap, or numpy's own large allocations)."""
    for line in maps.splitlines():
        fields = line.split(maxsplit=5)
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            return (fields[5] if len(fields) == 6 else ""), int(fields[4])
    raise AssertionError(f"address {address:#x} is in no mapping of this process")


def where(images: torch.Tensor) -> tuple[str, int]:
    return mapping_of(images.data_ptr(), Path("/proc/self/maps").read_text())


def assert_maps(images: torch.Tensor, file: Path) -> None:
    """The tensor's pixels are the pages of `file` (the same inode), not a copy in memory."""
    path, inode = where(images)
    assert inode == file.stat().st_ino and path == str(file.resolve()), (path, file)


def array_cache(tmp_path: Path, split: str) -> Path:
    (found,) = (tmp_path / "cache" / "arrays").glob(f"*-{split}-*-images.npy")
    return found


@pytest.fixture
def cifar_dir(tmp_path, monkeypatch):
    archive = cifar10_archive(tmp_path / "d")
    use_archive(monkeypatch, "cifar10", archive)
    return archive.parent


@pytest.fixture
def emoji_dir(tmp_path, monkeypatch):
    """The stand-in packages where the lookup order finds them (GENFORGE_DATA/emoji)."""
    return install_stand_in_emoji(tmp_path / "data", monkeypatch) / "emoji"


def emoji_cache(folder: Path, split: str) -> Path:
    (found,) = folder.glob(f"emoji-64px-*-{split}-images.npy")
    return found


# --- the first load and every later one map the cache ---------------------------------------

def test_cifar_maps_its_cache_from_the_first_load_on(tmp_path, cifar_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about read-only arrays: copy-on-write is writable
        first = load_split("cifar10", "train", data_dir=cifar_dir)
    cache = array_cache(tmp_path, "train")
    assert_maps(first.images, cache)  # the build returned the file it wrote, not its own copy
    second = load_split("cifar10", "train", data_dir=cifar_dir)
    assert_maps(second.images, cache)
    assert all(np.array_equal(second.images[i].numpy(), planes(i)) for i in range(10))
    # a slice of a named data set stays a view of the file
    part = load_dataset("cifar10", "test", data_dir=cifar_dir)
    assert_maps(part.images[1:], array_cache(tmp_path, "test"))


def test_idx_images_are_mapped_with_their_channel_added(tmp_path):
    digits = np.arange(5 * 28 * 28, dtype=np.int64).reshape(5, 28, 28).astype(np.uint8)
    folder = tmp_path / "mnist"
    folder.mkdir()
    write_idx(folder / "t10k-images-idx3-ubyte", digits)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.arange(5, dtype=np.uint8))
    for _ in range(2):  # the build, then the cache
        data = load_split("mnist", "test", data_dir=folder)
        assert data.images.shape == (5, 1, 28, 28) and np.array_equal(data.images[:, 0].numpy(), digits)
        assert_maps(data.images, array_cache(tmp_path, "test"))


def test_emoji_maps_its_cache_from_the_first_load_on(emoji_dir):
    first = load_split("emoji", "train")
    cache = emoji_cache(emoji_dir, "train")
    assert_maps(first.images, cache)
    # both splits were decoded and written at once; the other split maps its own file
    assert_maps(load_split("emoji", "test").images, emoji_cache(emoji_dir, "test"))
    again = load_split("emoji", "train")
    assert_maps(again.images, cache)
    assert torch.equal(first.images, again.images) and torch.equal(first.styles, again.styles)


def test_celeba_maps_its_cache_from_the_first_load_on(tmp_path, monkeypatch):
    root = tmp_path / "data"
    monkeypatch.setenv("GENFORGE_DATA", str(root))
    write_zip(root, n=6)
    for _ in range(2):  # the build (open_memmap, then the renamed file opened again), then the cache
        data = load_split("celeba64", "train", size=32)
        (cache,) = (tmp_path / "cache" / "celeba").glob("*.npy")
        assert_maps(data.images, cache)
        assert np.array_equal(data.images[0].numpy(), expected(0, 32))


def test_writing_to_a_mapped_set_never_changes_the_cache(tmp_path, cifar_dir):
    data = load_split("cifar10", "train", data_dir=cifar_dir)
    data.images[0] = 0  # copy-on-write: this process's private page changes, the file does not
    assert int(data.images[0].max()) == 0
    cache = array_cache(tmp_path, "train")
    assert np.array_equal(np.load(cache)[0], planes(0))
    assert np.array_equal(load_split("cifar10", "train", data_dir=cifar_dir).images[0].numpy(), planes(0))


# --- processes share one file ----------------------------------------------------------------

CHILD = """
import sys
from genforge.data import load_split
images = load_split("cifar10", "train", data_dir=sys.argv[1]).images
print(images.data_ptr())
print(open("/proc/self/maps").read())
"""


def test_two_processes_map_the_same_file(tmp_path, cifar_dir):
    mine = load_split("cifar10", "train", data_dir=cifar_dir).images
    # another process, as a second training rank on this machine would be (the same environment:
    # GENFORGE_CACHE points at this test's cache)
    out = subprocess.run([sys.executable, "-c", CHILD, str(cifar_dir)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr
    address, maps = out.stdout.split("\n", 1)
    theirs = mapping_of(int(address), maps)
    cache = array_cache(tmp_path, "train")
    assert theirs == where(mine) == (str(cache.resolve()), cache.stat().st_ino)


# --- when the cache is rebuilt, and when it cannot be written --------------------------------

def test_a_changed_archive_is_decoded_into_a_new_mapped_entry(tmp_path, cifar_dir, monkeypatch):
    old = load_split("cifar10", "train", data_dir=cifar_dir)
    old_cache = array_cache(tmp_path, "train")
    archive = cifar10_archive(cifar_dir, seed=50)  # other pixels under the same name
    use_archive(monkeypatch, "cifar10", archive)
    new = load_split("cifar10", "train", data_dir=cifar_dir)
    assert all(np.array_equal(new.images[i].numpy(), planes(50 + i)) for i in range(10))
    (new_cache,) = set((tmp_path / "cache" / "arrays").glob("*-train-*-images.npy")) - {old_cache}
    assert_maps(new.images, new_cache)
    assert np.array_equal(old.images[3].numpy(), planes(3))  # what a running process maps stays valid


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_broken_array_cache_is_rebuilt_with_the_same_images(tmp_path, cifar_dir, damage):
    first = load_split("cifar10", "train", data_dir=cifar_dir)
    cache = array_cache(tmp_path, "train")
    blob = cache.read_bytes()
    cache.unlink()  # a new file in its place: `first` maps the old one, which must stay readable
    cache.write_bytes(b"not an npy file" if damage == "garbage" else blob[:len(blob) - 100])
    again = load_split("cifar10", "train", data_dir=cifar_dir)
    assert torch.equal(first.images, again.images)
    assert_maps(again.images, cache)
    assert cache.read_bytes() == blob  # rewritten whole


def test_a_broken_emoji_cache_is_rebuilt_with_the_same_images(emoji_dir):
    first = load_split("emoji", "test")
    cache = emoji_cache(emoji_dir, "test")
    blob = cache.read_bytes()
    cache.unlink()
    cache.write_bytes(blob[:len(blob) // 2])  # cut short, as a full disk or a killed copy leaves it
    again = load_split("emoji", "test")
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert_maps(again.images, cache)
    assert cache.read_bytes() == blob


def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_unwritable_cache_falls_back_to_memory(tmp_path, cifar_dir, emoji_dir, monkeypatch, caplog):
    monkeypatch.setattr(registry, "_write_atomic", no_space)  # emoji writes through it too
    with caplog.at_level(logging.WARNING):
        data = load_split("cifar10", "train", data_dir=cifar_dir)
        faces = load_split("emoji", "train")
    assert all(np.array_equal(data.images[i].numpy(), planes(i)) for i in range(10))
    assert where(data.images)[1] == 0 and where(faces.images)[1] == 0  # anonymous memory: a copy
    assert "cannot write array cache" in caplog.text and "cannot write emoji cache" in caplog.text
    assert not list(emoji_dir.glob("*.npy"))


# --- a progress bar while decoding -----------------------------------------------------------

class Terminal(io.StringIO):
    """stderr as tqdm sees a terminal (it draws no bar when stderr is a file or a pipe)."""

    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_decoding_shows_a_progress_bar_on_a_terminal_only(tmp_path, cifar_dir, emoji_dir, monkeypatch, tty):
    err = Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    load_split("cifar10", "train", data_dir=cifar_dir)
    load_split("emoji", "train")
    shown = err.getvalue()
    if tty:
        assert f"reading {C10}" in shown and "emoji of google" in shown and "emoji of twitter" in shown
    else:
        assert shown == ""
    monkeypatch.setattr(sys, "stderr", Terminal())  # from the cache: nothing to decode, no bar
    load_split("cifar10", "train", data_dir=cifar_dir)
    load_split("emoji", "train")
    assert sys.stderr.getvalue() == ""
