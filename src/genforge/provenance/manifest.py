"""What a signed image says about itself: the manifest.

    manifest = build_manifest(model, "sample", {"n": 64, "seed": 0}, key)
    # {"format": "genforge-provenance/1", "tool": "genforge", "version": "0.1.0",
    #  "model": {"family": "cvae", "dataset": "mnist", "image_shape": [1, 28, 28],
    #            "weights_sha256": "9c1f..."},
    #  "operation": "sample", "parameters": {"n": 64, "seed": 0},
    #  "created": "2025-01-31T12:00:00Z", "key": "3f9a0c1d2e4b5a67", "public_key": "<base64>"}

An edit adds `inputs`: the SHA-256 of each input image's pixels as the model took them (at its
size, the same digest `image.sha256` records for a signed PNG, so an edit of a signed image names
that image). png.py adds `image` (the pixels' digest, mode and size) when it signs one picture.

No path is recorded (a run directory's or an input file's name can say more about the user than
the image should): the model is named by its family, data set and the SHA-256 of its weights file.
The manifest's bytes are canonical JSON (sorted keys, no spaces, UTF-8), so a reader re-makes the
exact bytes that were signed.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .keys import SigningKey

FORMAT = "genforge-provenance/1"
WEIGHT_FILES = ("model.safetensors", "checkpoint.safetensors")  # the order RunDir.load_model reads them in


def canonical(manifest: dict) -> bytes:
    """The bytes that are signed: JSON with sorted keys and no spaces, UTF-8."""
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def utc_now() -> str:
    """The time as ISO 8601 in UTC, to the second: 2025-01-31T12:00:00Z."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


_hashes: dict[tuple, str] = {}
_hash_lock = threading.Lock()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file in hex, remembered while the file's size and time are unchanged (the
    server signs every answer with the same weights)."""
    path = Path(path)
    stat = path.stat()
    ident = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    with _hash_lock:
        if ident in _hashes:
            return _hashes[ident]
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    with _hash_lock:
        _hashes[ident] = digest.hexdigest()
    return _hashes[ident]


def weights_sha256(run_dir: str | Path | None) -> str | None:
    """SHA-256 of the weights file a run's model was loaded from (model.safetensors, else
    checkpoint.safetensors), or None for a model with no run directory."""
    if run_dir is None:
        return None
    for name in WEIGHT_FILES:
        path = Path(run_dir) / name
        if path.is_file():
            return file_sha256(path)
    return None


def model_record(model) -> dict:
    """The manifest's `model`: family, data set, image shape and weights hash of a loaded
    `genforge.api.Model`."""
    data = model.run_config.get("data") or {}
    return {"family": model.name, "dataset": data.get("dataset"), "image_shape": list(model.image_shape),
            "weights_sha256": weights_sha256(model.run_dir)}


def plain(value: Any) -> Any:
    """A parameter as JSON can hold it: numbers, text, booleans, None, lists and dicts of them;
    anything else (a tensor, a path) as its text, non-finite numbers as text too."""
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # a numpy or torch scalar
        return plain(value.item())
    return str(value)


def build_manifest(model, operation: str, parameters: dict, key: SigningKey,
                   inputs: list[str] | None = None) -> dict:
    """The manifest of images a model made: `operation` ("sample", "edit:swap-class", ...) with its
    `parameters`; `inputs` the pixel digests of an edit's input images."""
    from .. import __version__
    manifest = {"format": FORMAT, "tool": "genforge", "version": __version__, "model": model_record(model),
                "operation": operation, "parameters": plain(parameters), "created": utc_now(),
                "key": key.fingerprint, "public_key": key.public_b64}
    if inputs is not None:
        manifest["inputs"] = list(inputs)
    return manifest


__all__ = ["FORMAT", "build_manifest", "canonical", "file_sha256", "model_record", "plain", "utc_now",
           "weights_sha256"]
