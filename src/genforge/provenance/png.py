"""The signed manifest in a PNG: one iTXt chunk, keyword "genforge:provenance".

    signer = Signer(manifest, key)
    signer.save(picture, "grid.png")               # a PIL image or a uint8 (H, W, C) array
    data = signer.png_bytes(picture, index=3)      # for a server answer
    read_chunk(Image.open("grid.png"))             # the chunk's text, or None

The chunk's text is JSON: {"alg": "Ed25519", "manifest": {...}, "signature": "<base64>"}. The
manifest gets `image`: the SHA-256 of the picture's decoded pixels (`pixels_sha256`: mode, size
and raw bytes), its mode and size; the signature is Ed25519 over a fixed prefix, the manifest's
canonical bytes and that digest, so a change to one pixel or one character of the manifest breaks
it. Any re-encoding (a re-save, a screenshot, an upload that converts) drops the chunk: signed
metadata proves what it covers and nothing about an image without it.

One signature per PNG: a 64-image grid costs one SHA-256 of its pixels and one Ed25519 signature
(tens of microseconds), whatever the number of images in it.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from .keys import SigningKey
from .manifest import canonical

KEYWORD = "genforge:provenance"
ALG = "Ed25519"
SIGNED_PREFIX = b"genforge-provenance/1\x00"  # what is signed starts so: the signature means nothing elsewhere
ZIP_ABOVE = 1024  # a chunk text longer than this is stored compressed (an edit's list of input hashes)


def pixels_sha256(image: Image.Image) -> str:
    """SHA-256 (hex) of a picture's decoded pixels: its mode, size and raw bytes. The same for the
    picture before it is written and after the PNG is read back (PNG is lossless)."""
    header = f"{image.mode} {image.size[0]}x{image.size[1]}\n".encode("ascii")
    return hashlib.sha256(header + image.tobytes()).hexdigest()


def to_image(picture: Image.Image | np.ndarray) -> Image.Image:
    """A PIL image of a uint8 (H, W, C) array, C 1 (grey, "L") or 3 ("RGB"); an image as it is."""
    if isinstance(picture, Image.Image):
        return picture
    array = np.ascontiguousarray(picture)
    return Image.fromarray(array[..., 0] if array.ndim == 3 and array.shape[-1] == 1 else array)


def digests(images) -> list[str]:
    """`pixels_sha256` of each uint8 image of (N, C, H, W) (a CPU tensor or an array): an edit's
    inputs as its manifest names them."""
    array = np.asarray(images)
    return [pixels_sha256(to_image(image)) for image in array.transpose(0, 2, 3, 1)]


def signed_payload(manifest: dict, digest_hex: str) -> bytes:
    """The exact bytes the signature covers."""
    return SIGNED_PREFIX + canonical(manifest) + bytes.fromhex(digest_hex)


class Signer:
    """Signs PNGs with one manifest (build_manifest's) and one key. `index`: the picture is image
    `index` of a set written one file each; it is recorded, and where the manifest lists one input
    per image (an edit's results), the picture's manifest names its own input alone. `c2pa`: also
    add C2PA content credentials (credentials.py; needs c2pa-python)."""

    def __init__(self, manifest: dict, key: SigningKey, c2pa: bool = False):
        self.manifest, self.key, self.c2pa = manifest, key, c2pa

    def manifest_for(self, image: Image.Image, index: int | None = None) -> dict:
        manifest = dict(self.manifest)
        if index is not None:
            manifest["index"] = index
            inputs = manifest.get("inputs")
            if inputs and index < len(inputs):
                manifest["inputs"] = [inputs[index]]
        manifest["image"] = {"sha256": pixels_sha256(image), "mode": image.mode, "size": list(image.size)}
        return manifest

    def chunk_text(self, manifest: dict) -> str:
        """The chunk's text for a manifest of one picture (manifest_for's): the manifest and its signature."""
        signature = self.key.sign(signed_payload(manifest, manifest["image"]["sha256"]))
        return canonical({"alg": ALG, "manifest": manifest,
                          "signature": base64.b64encode(signature).decode("ascii")}).decode("utf-8")

    def pnginfo(self, image: Image.Image, index: int | None = None) -> PngInfo:
        return self._pnginfo(self.chunk_text(self.manifest_for(image, index)))

    @staticmethod
    def _pnginfo(text: str) -> PngInfo:
        info = PngInfo()
        info.add_itxt(KEYWORD, text, zip=len(text) > ZIP_ABOVE)
        return info

    def png_bytes(self, picture: Image.Image | np.ndarray, index: int | None = None) -> bytes:
        """The picture as PNG file bytes carrying its signed manifest (and C2PA credentials with `c2pa`)."""
        image = to_image(picture)
        manifest = self.manifest_for(image, index)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", pnginfo=self._pnginfo(self.chunk_text(manifest)))
        if not self.c2pa:
            return buffer.getvalue()
        from .credentials import embed
        return embed(buffer.getvalue(), manifest)

    def save(self, picture: Image.Image | np.ndarray, path: str | Path, index: int | None = None) -> None:
        Path(path).write_bytes(self.png_bytes(picture, index))


def save_png(picture: Image.Image | np.ndarray, path: str | Path, signer: Signer | None = None,
             index: int | None = None) -> None:
    """Writes a PNG, signed when a signer is given."""
    if signer is not None:
        signer.save(picture, path, index)
    else:
        to_image(picture).save(path, format="PNG")


def read_chunk(image: Image.Image) -> str | None:
    """The text of the picture's genforge chunk, or None when it has none (or is not a PNG).
    Text only: nothing is unpickled, evaluated or run. Pillow caps a compressed chunk's size."""
    if image.format != "PNG":
        return None
    text = image.info.get(KEYWORD)  # chunks before the pixel data (where genforge writes it)
    if text is None:
        text = getattr(image, "text", {}).get(KEYWORD)  # and any after them (loads the picture)
    return None if text is None else str(text)


__all__ = ["ALG", "KEYWORD", "Signer", "digests", "pixels_sha256", "read_chunk", "save_png", "signed_payload", "to_image"]
