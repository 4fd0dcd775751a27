"""Provenance: what genforge writes says so.

Signed metadata (this package's keys, manifest, png and verify modules): every PNG that
`genforge sample`, `genforge edit` and the server write carries a manifest (tool, model, weights
hash, operation and parameters, inputs of an edit, time) in an iTXt chunk, signed with this
machine's Ed25519 key; `genforge verify` reads it back as signed, broken or none. The learned
watermark in the pixels is the `watermark` subpackage.

    signer = signer_for(model, "sample", {"n": 16, "seed": 0})
    signer.save(picture, "grid.png")
    verify_file("grid.png")["status"]   # "signed"
"""

from __future__ import annotations

from .keys import SigningKey, config_dir, new_key, signing_key
from .manifest import build_manifest
from .png import KEYWORD, Signer, digests, read_chunk
from .verify import describe, verify_bytes, verify_file, verify_image


def signer_for(model, operation: str, parameters: dict, inputs=None, c2pa: bool = False) -> Signer:
    """A Signer for images `model` (a `genforge.api.Model`) made by `operation` with `parameters`;
    `inputs`: an edit's input images, uint8 (N, C, H, W), or their digests; `c2pa`: also add C2PA
    content credentials (needs c2pa-python: checked here, before any work). Makes this machine's
    key at first use."""
    if c2pa:
        from .credentials import require
        require()
    if inputs is not None and not (isinstance(inputs, list) and all(isinstance(d, str) for d in inputs)):
        inputs = digests(inputs)
    key = signing_key()
    return Signer(build_manifest(model, operation, parameters, key, inputs), key, c2pa)


__all__ = ["KEYWORD", "Signer", "SigningKey", "build_manifest", "config_dir", "describe", "digests", "new_key",
           "read_chunk", "signer_for", "signing_key", "verify_bytes", "verify_file", "verify_image"]
