"""Reading an image's signed manifest back: one of three verdicts, never "authentic".

    result = verify_file("grid.png")
    result["status"]   # "signed" | "broken" | "none"

- **signed**: the manifest and the pixels are as key K signed them. `key` is K's fingerprint,
  `own` whether K is this machine's key (current or kept by `genforge keys new`), and `model`,
  `operation`, `parameters`, `created` (and for an edit `inputs`) what K's manifest says. Anyone
  can make a key: a signature proves which key signed, not who holds it. Compare K with the
  maker's `genforge keys show`.
- **broken**: a manifest is there but does not hold: the pixels or the manifest changed after
  signing, or the chunk is malformed. `reason` says which.
- **none**: no manifest. The origin is unknown: a re-saved, converted or screenshot image loses
  its chunk, and most images never had one. It is never evidence that an image is authentic.

Reading is JSON only (nothing is unpickled or run); a malformed chunk is a verdict, not a crash.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from PIL import Image

from ..errors import ProvenanceError
from .keys import fingerprint, own_fingerprints
from .png import ALG, pixels_sha256, read_chunk, signed_payload

MAX_TEXT = 1 << 20  # a chunk longer than this is malformed (genforge's are a few hundred bytes to tens of KB)
NONE_REASON = "no genforge manifest: the origin is unknown (this is not evidence that the image is authentic)"
FIELDS = ("status", "key", "own", "model", "operation", "parameters", "created", "inputs", "reason", "c2pa")


class Malformed(ValueError):
    """The chunk is there but is not a manifest genforge can check."""


def _result(status: str, reason: str | None = None, **found) -> dict:
    out = dict.fromkeys(FIELDS)
    out.update({"status": status, "own": False, "reason": reason, **found})
    return out


def unsigned(reason: str = NONE_REASON) -> dict:
    """The "none" verdict (no manifest), e.g. for an image that came as an array, not a file."""
    return _result("none", reason)


def _b64(text, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True) if isinstance(text, str) else b""
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != size:
        raise Malformed(f"its {what} is not {size} base64 bytes")
    return raw


def _parse(text: str) -> tuple[dict, bytes, bytes, str]:
    """(manifest, signature, public key, recorded pixel digest) of a chunk's text, or Malformed."""
    if len(text) > MAX_TEXT:
        raise Malformed(f"it is {len(text)} characters long")
    try:
        chunk = json.loads(text)
    except (ValueError, RecursionError):
        raise Malformed("it is not JSON") from None
    if not isinstance(chunk, dict) or not isinstance(chunk.get("manifest"), dict):
        raise Malformed("it holds no manifest object")
    if chunk.get("alg") != ALG:
        raise Malformed(f"its algorithm is {str(chunk.get('alg'))[:40]!r}, not {ALG}")
    manifest = chunk["manifest"]
    signature = _b64(chunk.get("signature"), 64, "signature")
    public = _b64(manifest.get("public_key"), 32, "public key")
    image = manifest.get("image")
    recorded = image.get("sha256") if isinstance(image, dict) else None
    if not isinstance(recorded, str) or len(recorded) != 64 or any(c not in "0123456789abcdef" for c in recorded):
        raise Malformed("it records no pixel digest")
    return manifest, signature, public, recorded


def verify_image(image: Image.Image, own: dict[str, str] | None = None) -> dict:
    """The verdict on a decoded picture (opened from a PNG: a picture of any other format has no
    manifest). `own`: {fingerprint: "current" | "backup"} of this machine's keys (default: read
    from the config folder)."""
    text = read_chunk(image)
    if text is None:
        return _result("none", NONE_REASON)
    try:
        manifest, signature, public, recorded = _parse(text)
        payload = signed_payload(manifest, pixels_sha256(image))
    except Malformed as e:
        return _result("broken", f"the manifest is malformed: {e}")
    except ValueError:  # canonical JSON refuses NaN and infinities
        return _result("broken", "the manifest is malformed: it holds a number JSON does not allow")
    key = fingerprint(public)
    if manifest.get("key") != key:
        return _result("broken", "the manifest names another key than the one it carries")
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, payload)
    except InvalidSignature:
        if recorded != pixels_sha256(image):
            return _result("broken", "the pixels changed after signing")
        return _result("broken", "the manifest changed after signing")
    own = own_keys() if own is None else own
    inputs = manifest.get("inputs")
    return _result("signed", key=key, own=key in own, model=_typed(manifest, "model", dict),
                   operation=_typed(manifest, "operation", str), parameters=_typed(manifest, "parameters", dict),
                   created=_typed(manifest, "created", str),
                   inputs=inputs if isinstance(inputs, list) and all(isinstance(d, str) for d in inputs) else None)


def _typed(manifest: dict, field: str, kind: type):
    """A field of a signed manifest if it has the type genforge writes, else None: any key can
    sign any JSON, and readers (the server's schema) count on the types."""
    value = manifest.get(field)
    return value if isinstance(value, kind) else None


def own_keys() -> dict[str, str]:
    """This machine's key fingerprints; none where its key folder cannot be read (verifying
    needs no key of its own: the public key travels in the manifest)."""
    try:
        return own_fingerprints()
    except (ProvenanceError, OSError):
        return {}


def _open(source, name: str) -> Image.Image:
    try:
        image = Image.open(source)
        image.load()
        return image
    except Exception as e:  # Pillow signals a bad file with many exception types
        raise ProvenanceError(f"{name}: not a readable image ({type(e).__name__}: {e})") from None


def verify_file(path: str | Path, own: dict[str, str] | None = None) -> dict:
    """The verdict on an image file; ProvenanceError (one line) for a file that is missing or not
    a readable image."""
    path = Path(path)
    if not path.is_file():
        raise ProvenanceError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    return verify_bytes(path.read_bytes(), str(path), own)


def verify_bytes(data: bytes, name: str = "image", own: dict[str, str] | None = None) -> dict:
    """The verdict on an image's file bytes (an upload); ProvenanceError if they do not decode.
    Where c2pa-python is installed, `c2pa` holds the verdict on C2PA content credentials
    (credentials.read), else None."""
    image = _open(io.BytesIO(data), name)
    result = verify_image(image, own)
    if image.format == "PNG" and b"caBX" in data:  # the chunk C2PA keeps its store in
        from .credentials import read
        result["c2pa"] = read(data)
    return result


def describe(result: dict) -> str:
    """One line for people: who signed, with what model and operation; or why not."""
    if result["status"] == "signed":
        model = result.get("model") or {}
        whose = " (this machine's key)" if result.get("own") else ""
        weights = model.get("weights_sha256") if isinstance(model, dict) else None
        family = model.get("family", "?") if isinstance(model, dict) else "?"
        dataset = model.get("dataset") if isinstance(model, dict) else None
        made = f"made by {family}" + (f" ({dataset}" + (f", weights {weights[:12]}" if weights else "") + ")"
                                      if dataset else "")
        line = f"signed by key {result['key']}{whose}; {made} with {result.get('operation')}, {result.get('created')}"
    else:
        line = result["reason"]
    c2pa = result.get("c2pa")
    if c2pa:
        how = {"Trusted": "trusted (this machine's certificates)",
               "Valid": "intact, by a signer this machine does not trust"}.get(c2pa["state"], "invalid")
        failures = [code for code in c2pa.get("failures") or [] if code != "signingCredential.untrusted"]
        line += f"; C2PA credentials {how}" + (f" ({', '.join(failures[:3])})" if failures else "")
    return line


__all__ = ["NONE_REASON", "describe", "own_keys", "unsigned", "verify_bytes", "verify_file", "verify_image"]
