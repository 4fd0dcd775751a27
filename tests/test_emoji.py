"""The emoji data set (data/emoji.py) on small fake npm packages served by a fake registry:
no network. The packages have the real layout: package/emoji.json beside
package/img/<vendor>/64/<image>.png, transparent RGBA PNGs."""

import base64
import hashlib
import io
import json
import os
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genforge.data import emoji
from genforge.data.emoji import (CATEGORIES, DEFAULT_VENDORS, EMOJI_INFO, EMOJI_VERSION, VENDORS, Vendor,
                                 emoji_codes, fetch_emoji, load_emoji, split_of, tarball_path)
from genforge.data.imageset import ImageSet
from genforge.errors import DataError, DataNotFound, UnknownName

REGISTRY = "https://registry.example"
CATS = CATEGORIES * 4  # 36 emoji, four of each category
TONES = ("1F3FB", "1F3FC", "1F3FD", "1F3FE", "1F3FF")


def _code(i: int) -> str:
    return f"1F{0x600 + i:03X}"


def _png(rgba: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buf, format="PNG")
    return buf.getvalue()


def _picture(i: int, vendor: str) -> np.ndarray:
    """Transparent background; a half-transparent red square top-left; an opaque 1-pixel
    black/white checkerboard bottom-right (aliases when badly downsampled); an opaque colour
    that tells emoji and vendor apart at rows 40-43, columns 8-11."""
    a = np.zeros((64, 64, 4), np.uint8)
    a[:16, :16] = (255, 0, 0, 128)
    yy, xx = np.mgrid[0:32, 0:32]
    a[32:, 32:, :3] = ((yy + xx) % 2 * 255)[..., None]
    a[32:, 32:, 3] = 255
    a[40:44, 8:12] = (i * 7 % 256, 200 if vendor == "google" else 50, 100, 255)
    return a


def _listing() -> list[dict]:
    entries = []
    for i, cat in enumerate(CATS):
        code = _code(i)
        e = {"unified": code, "image": code.lower() + ".png", "category": cat, "subcategory": "x",
             "sort_order": 100 - i,  # reverse of file order: the package's order must win
             "has_img_google": i != 5, "has_img_twitter": True}  # google lacks emoji 5
        if cat == "People & Body":
            e["skin_variations"] = {t: {"unified": f"{code}-{t}", "image": f"{code}-{t}".lower() + ".png",
                                        "has_img_google": True, "has_img_twitter": True} for t in TONES}
        entries.append(e)
    entries.append({"unified": "1F3FB", "image": "1f3fb.png", "category": "Component",
                    "subcategory": "skin-tone", "sort_order": 999, "has_img_google": True, "has_img_twitter": True})
    return entries


def _tarball(vendor: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        def add(name, data):
            info = tarfile.TarInfo("package/" + name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        listing = _listing()
        add("package.json", json.dumps({"name": f"emoji-datasource-{vendor}"}).encode())
        for i, e in enumerate(listing):
            forms = [e] + list(e.get("skin_variations", {}).values())
            for j, form in enumerate(forms):
                if form.get(f"has_img_{vendor}"):
                    add(f"img/{vendor}/64/{form['image']}", _png(_picture(i * 6 + j, vendor)))
        add("emoji.json", json.dumps(listing).encode())  # after the images: order must not matter
        add(f"img/{vendor}/sheets/64.png", _png(np.zeros((8, 8, 4), np.uint8)))
    return buf.getvalue()


def _sri(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


TARBALLS = {v: _tarball(v) for v in ("google", "twitter")}


class FakeRegistry:
    """Serves npm metadata and tarballs from a dict; records every URL asked for."""

    def __init__(self):
        self.urls, self.asked = {}, []
        for vendor, data in TARBALLS.items():
            package = f"emoji-datasource-{vendor}"
            tarball = f"{REGISTRY}/{package}/-/{package}-{EMOJI_VERSION}.tgz"
            self.urls[f"{REGISTRY}/{package}/{EMOJI_VERSION}"] = json.dumps(
                {"name": package, "version": EMOJI_VERSION,
                 "dist": {"tarball": tarball, "integrity": _sri(data)}}).encode()
            self.urls[tarball] = data

    def tarball_url(self, vendor):
        return next(u for u in self.urls if u.endswith(f"emoji-datasource-{vendor}-{EMOJI_VERSION}.tgz"))

    def __call__(self, url, timeout=None):
        self.asked.append(url)
        if url not in self.urls:
            raise urllib.error.HTTPError(url, 404, "Not Found", {}, None)
        return io.BytesIO(self.urls[url])


@pytest.fixture(autouse=True)
def fake_vendors(monkeypatch):
    """The fake packages' hashes pinned in place of the real ones; downloads on, from the fake
    registry only."""
    for vendor, data in TARBALLS.items():
        monkeypatch.setitem(VENDORS, vendor, Vendor(VENDORS[vendor].package, VENDORS[vendor].licence,
                                                    True, _sri(data)))
    monkeypatch.setenv("GENFORGE_OFFLINE", "0")
    monkeypatch.setenv("GENFORGE_NPM_REGISTRY", REGISTRY)
    registry = FakeRegistry()
    monkeypatch.setattr(emoji, "urlopen", registry)
    return registry


def _no_network(*args, **kwargs):
    raise AssertionError("the network was used")


def _one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


# ---------------------------------------------------------------------------------------------
# fetching


def test_fetch_verifies_and_renames_into_place(tmp_path, fake_vendors, monkeypatch):
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((Path(src), Path(dst), Path(dst).exists()))
        real_replace(src, dst)

    monkeypatch.setattr(emoji.os, "replace", spy)
    paths = fetch_emoji(tmp_path / "emoji")
    assert paths == [tarball_path(tmp_path / "emoji", v) for v in ("google", "twitter")]
    for vendor, path in zip(("google", "twitter"), paths):
        assert path.read_bytes() == TARBALLS[vendor]
    # each tarball came from a temp file in the same folder, renamed over nothing
    assert [(src.parent, dst, existed) for src, dst, existed in renames] == [(p.parent, p, False) for p in paths]
    assert all(src.name.endswith(".part") for src, _, _ in renames)
    assert sorted(p.name for p in (tmp_path / "emoji").iterdir()) == sorted(p.name for p in paths)
    assert f"{REGISTRY}/emoji-datasource-google/{EMOJI_VERSION}" in fake_vendors.asked

    # present and verified: no network at all the second time
    monkeypatch.setattr(emoji, "urlopen", _no_network)
    assert fetch_emoji(tmp_path / "emoji") == paths


def test_tampered_tarball_is_refused_and_not_kept(tmp_path, fake_vendors):
    url = fake_vendors.tarball_url("google")
    fake_vendors.urls[url] = TARBALLS["google"][:-10] + b"x" * 10
    with pytest.raises(DataError) as error:
        fetch_emoji(tmp_path, vendors=("google",))
    message = _one_line(error)
    assert url in message and "sha512" in message and "not kept" in message
    assert list(tmp_path.iterdir()) == []  # neither the tarball nor its temp file


def test_registry_publishing_another_hash_is_refused(tmp_path, fake_vendors):
    meta_url = f"{REGISTRY}/emoji-datasource-twitter/{EMOJI_VERSION}"
    meta = json.loads(fake_vendors.urls[meta_url])
    meta["dist"]["integrity"] = _sri(b"something else")
    fake_vendors.urls[meta_url] = json.dumps(meta).encode()
    with pytest.raises(DataError, match="genforge pins") as error:
        fetch_emoji(tmp_path, vendors="twitter")
    assert meta_url in _one_line(error)
    assert fake_vendors.asked == [meta_url]  # the tarball was never asked for
    assert list(tmp_path.iterdir()) == []


def test_network_failure_is_one_line(tmp_path, monkeypatch):
    def down(url, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(emoji, "urlopen", down)
    with pytest.raises(DataNotFound) as error:
        fetch_emoji(tmp_path)
    message = _one_line(error)
    assert f"{REGISTRY}/emoji-datasource-google/{EMOJI_VERSION}" in message
    assert "GENFORGE_NPM_REGISTRY" in message and f"emoji-datasource-google-{EMOJI_VERSION}.tgz" in message


def test_interrupted_download_leaves_nothing(tmp_path, fake_vendors, monkeypatch):
    class Broken(io.BytesIO):
        def read(self, n=-1):
            if self.tell() > 0:
                raise ConnectionResetError("connection reset by peer")
            return super().read(1000)

    url = fake_vendors.tarball_url("google")

    def opener(u, timeout=None):
        return Broken(TARBALLS["google"]) if u == url else fake_vendors(u, timeout)

    monkeypatch.setattr(emoji, "urlopen", opener)
    with pytest.raises(DataNotFound, match="connection reset") as error:
        fetch_emoji(tmp_path, vendors=["google"])
    assert url in _one_line(error)
    assert list(tmp_path.iterdir()) == []


def test_offline_refuses_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GENFORGE_OFFLINE", "1")
    monkeypatch.setattr(emoji, "urlopen", _no_network)
    with pytest.raises(DataNotFound) as error:
        fetch_emoji(tmp_path)
    message = _one_line(error)
    assert "GENFORGE_OFFLINE" in message and f"emoji-datasource-google-{EMOJI_VERSION}.tgz" in message
    with pytest.raises(DataNotFound, match="GENFORGE_OFFLINE"):
        load_emoji(tmp_path, "train")


def test_damaged_tarball_on_disk_is_fetched_again_or_refused_offline(tmp_path, fake_vendors, monkeypatch):
    path = tarball_path(tmp_path, "google")
    path.write_bytes(b"not the package")
    monkeypatch.setenv("GENFORGE_OFFLINE", "1")
    with pytest.raises(DataError, match="does not match the sha512") as error:
        fetch_emoji(tmp_path, vendors="google")
    _one_line(error)
    monkeypatch.setenv("GENFORGE_OFFLINE", "0")
    fetch_emoji(tmp_path, vendors="google")
    assert path.read_bytes() == TARBALLS["google"]


def test_vendors_are_checked_and_the_non_free_ones_opt_in(tmp_path):
    assert DEFAULT_VENDORS == ("google", "twitter")
    assert not VENDORS["apple"].default and not VENDORS["facebook"].default
    with pytest.raises(UnknownName, match="unknown emoji vendor 'samsung'"):
        fetch_emoji(tmp_path, vendors=("google", "samsung"))
    with pytest.raises(UnknownName, match="no emoji vendor"):
        load_emoji(tmp_path, "train", vendors=())
    with pytest.raises(UnknownName, match="unknown split 'validation'"):
        load_emoji(tmp_path, "validation")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# loading


@pytest.fixture
def fetched(tmp_path):
    fetch_emoji(tmp_path)
    return tmp_path


def test_transparency_is_composited_onto_the_background(fetched):
    s = load_emoji(fetched, "train", vendors="google")
    assert s.images.dtype == torch.uint8 and s.shape == (3, 64, 64)
    px = s.images.permute(0, 2, 3, 1)  # (N, H, W, 3)
    assert (px[:, 20:30, 0:30] == 255).all()  # fully transparent -> white, not black
    red = px[:, 0:16, 0:16].reshape(-1, 3)
    assert (red[:, 0] == 255).all() and ((red[:, 1:] - 127).abs() <= 1).all()  # half red on white: pink
    # on black the same pixel is half red: a proof that alpha, not the dropped channel, decides
    dark = load_emoji(fetched, "train", vendors="google", background=(0, 0, 0)).images.permute(0, 2, 3, 1)
    assert ((dark[:, 0:16, 0:16, 0].int() - 128).abs() <= 1).all() and (dark[:, 0:16, 0:16, 1:] == 0).all()
    grey = load_emoji(fetched, "train", vendors="google", background="#808080").images
    assert (grey[:, :, 25, 5] == 128).all()
    with pytest.raises(DataError, match="not a colour"):
        load_emoji(fetched, "train", background=(300, 0, 0))


def test_resize_to_32_is_antialiased(fetched):
    big = load_emoji(fetched, "test", size=64)
    small = load_emoji(fetched, "test", size=32)
    assert small.shape == (3, 32, 32) and len(small) == len(big)
    # the 1-pixel checkerboard averages to grey; an aliasing resize would give black or white
    board = small.images[:, :, 18:30, 18:30].float()
    assert ((board - 127.5).abs() < 20).all()
    # and it is PIL's Lanczos of the composited image
    rgb = Image.fromarray(big.images[0].permute(1, 2, 0).numpy())
    expected = np.asarray(rgb.resize((32, 32), Image.Resampling.LANCZOS))
    assert np.array_equal(small.images[0].permute(1, 2, 0).numpy(), expected)
    with pytest.raises(DataError, match="whole number of pixels"):
        load_emoji(fetched, "test", size=0)


def _expected(vendor: str, skin_tones: bool = True) -> dict[str, int]:
    """code -> category index of every image of a vendor the fake package should yield."""
    out = {}
    for e in _listing():
        if e["category"] == "Component":
            continue
        forms = [e] + (list(e.get("skin_variations", {}).values()) if skin_tones else [])
        for form in forms:
            if form[f"has_img_{vendor}"]:
                out[form["unified"]] = CATEGORIES.index(e["category"])
    return out


def test_labels_styles_and_categories(fetched):
    both = {split: load_emoji(fetched, split) for split in ("train", "test")}
    assert all(s.classes == CATEGORIES and s.style_names == ["google", "twitter"] for s in both.values())
    seen = {}
    for split, s in both.items():
        for code, label, style in zip(emoji_codes(fetched, split), s.labels.tolist(), s.styles.tolist()):
            seen[(s.style_names[style], code)] = label
    for vendor in ("google", "twitter"):
        expected = _expected(vendor)
        assert {c: l for (v, c), l in seen.items() if v == vendor} == expected
    assert "1F3FB" not in {c for _, c in seen}  # the skin-tone swatch (Component) is no emoji
    assert ("google", _code(5)) not in seen and ("twitter", _code(5)) in seen  # has_img_google false
    # the vendor's own pixels: green 200 for google, 50 for twitter
    s = both["train"]
    g = s.images[:, 1, 42, 10]
    assert (g[s.styles == 0] == 200).all() and (g[s.styles == 1] == 50).all()
    # without skin tones only the base emoji remain
    plain = sum(len(load_emoji(fetched, split, skin_tones=False)) for split in ("train", "test"))
    assert plain == len(_expected("google", False)) + len(_expected("twitter", False))
    # the packages' order (sort_order), with one emoji's vendors side by side
    codes = emoji_codes(fetched, "train")
    order = {e["unified"]: e["sort_order"] for e in _listing()}
    keys = [order[c.split("-")[0]] for c in codes]
    assert keys == sorted(keys)


def test_split_is_fixed_and_keeps_an_emoji_together(fetched):
    codes = {split: emoji_codes(fetched, split) for split in ("train", "test")}
    assert codes["test"] and codes["train"]  # both splits hold emoji of the fake package
    bases = {split: {c.split("-")[0] for c in cs} for split, cs in codes.items()}
    assert not bases["train"] & bases["test"]  # no emoji (any vendor, any skin tone) in both
    for split, cs in codes.items():
        assert all(split_of(c.split("-")[0]) == split for c in cs)
    for base in bases["test"]:  # both vendors of a test emoji are in test, with all its tones
        n = sum(c.split("-")[0] == base for c in codes["test"])
        assert n == sum(c.split("-")[0] == base for v in ("google", "twitter") for c in _expected(v))
    # the split is a property of the emoji and the seed, the same on every machine
    assert split_of("1F609") == "test" and split_of("1F600") == "train"
    again = load_emoji(fetched, "test", vendors=("twitter", "google"))
    assert sorted(emoji_codes(fetched, "test", vendors=("twitter", "google"))) == sorted(codes["test"])
    assert again.style_names == ["twitter", "google"]


def test_second_load_comes_from_the_cache(fetched, monkeypatch):
    first = load_emoji(fetched, "train", size=32)
    assert sorted(p.name for p in fetched.glob("*.npy"))  # written beside the tarballs

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(emoji, "_decode_all", no_decoding)
    monkeypatch.setattr(emoji, "urlopen", _no_network)
    for split in ("train", "test"):  # the first load cached both splits
        load_emoji(fetched, split, size=32)
    second = load_emoji(fetched, "train", size=32)
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert torch.equal(first.styles, second.styles)
    with pytest.raises(AssertionError, match="decoded again"):  # another size is another cache entry
        load_emoji(fetched, "train", size=16)


def test_subset_keeps_styles():
    images = torch.zeros(4, 3, 2, 2, dtype=torch.uint8)
    s = ImageSet(images, torch.tensor([0, 1, 2, 3]), None, "x", torch.tensor([0, 1, 0, 1]), ["a", "b"])
    sub = s.subset(torch.tensor([3, 0]))
    assert sub.styles.tolist() == [1, 0] and sub.style_names == ["a", "b"] and sub.labels.tolist() == [3, 0]
    assert ImageSet(images).subset([0]).styles is None
    with pytest.raises(ValueError, match="3 styles for 4 images"):
        ImageSet(images, styles=torch.zeros(3))


def test_info_states_shape_classes_and_both_licences():
    assert EMOJI_INFO["shape"] == (3, 64, 64) and EMOJI_INFO["classes"] == CATEGORIES
    assert "Component" not in EMOJI_INFO["classes"]
    licence = EMOJI_INFO["licence"]
    assert "Apache License 2.0" in licence and "CC BY 4.0" in licence
    assert "Twitter, Inc and other contributors" in licence and "opt-in" in licence
    assert EMOJI_VERSION in EMOJI_INFO["citation"]
