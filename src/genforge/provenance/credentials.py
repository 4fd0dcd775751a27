"""C2PA content credentials: the same manifest in the industry's format, as an option.

    pip install 'genforge[c2pa]'                 # c2pa-python, the C2PA project's own library
    genforge sample runs/vae --n 16 --grid --out grid.png --c2pa

With `--c2pa` (sample, edit) each signed PNG also carries a C2PA manifest store (a `caBX` chunk):
a `c2pa.actions` assertion (`c2pa.created`, digital source type *trainedAlgorithmicMedia*) and
an `org.genforge.provenance` assertion holding genforge's own manifest, signed with ES256 by a
certificate chain made on this machine: a local root and a signer certificate, kept beside the
Ed25519 key in the config folder (`c2pa/`, private keys 0600). Nothing goes over the network: no
time-stamp authority, no OCSP. Any C2PA reader (c2pa-python, c2patool, the CAI's verify page)
reads it; it calls the signer *untrusted* unless it trusts this machine's root, and `genforge
verify` on this machine does. A C2PA store costs about 3 KB per PNG (more than a 28x28 image
itself), which is why it is not the default.

genforge's own chunk is written first and stays: C2PA's hash of the file covers it, and it still
verifies with `genforge verify` on machines without c2pa-python.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import threading
from pathlib import Path

from ..errors import ProvenanceError
from .keys import config_dir, make_folder, private_pem, write_private

FOLDER = "c2pa"
ASSERTION = "org.genforge.provenance"
AI_MADE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
VALID_DAYS = 3650
INSTALL = "pip install 'genforge[c2pa]'"


def available() -> bool:
    """Whether c2pa-python is installed."""
    try:
        import c2pa  # noqa: F401
    except ImportError:
        return False
    return True


def require() -> None:
    """ProvenanceError (one line) when c2pa-python is not installed."""
    if not available():
        raise ProvenanceError(f"--c2pa writes C2PA content credentials with c2pa-python, which is not installed: "
                              f"{INSTALL}")


def chain_folder() -> Path:
    return config_dir() / FOLDER


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "genforge (this machine's own, not a public CA)")])


def _certificate(subject, issuer, public_key, signing_key, ca: bool):
    """An X.509 certificate as C2PA's signer profile asks: a CA root that signs certificates, or
    an end certificate for digital signatures with the email-protection purpose."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = dict(digital_signature=not ca, content_commitment=False, key_encipherment=False, data_encipherment=False,
                 key_agreement=False, key_cert_sign=ca, crl_sign=ca, encipher_only=False, decipher_only=False)
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
               .add_extension(x509.KeyUsage(**usage), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))
    if not ca:
        builder = (builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()),
                                  critical=False))
    return builder.sign(signing_key, hashes.SHA256())


def _make_chain(folder: Path) -> None:
    """A root and a signer certificate with their keys, made in a private temporary folder and
    renamed into place whole (of two processes making one at once, the first's is kept)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    make_folder(folder.parent)
    tmp = folder.parent / f".{FOLDER}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        tmp.mkdir(mode=0o700)
        root_key, signer_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
        root_name = _name("genforge local root")
        root = _certificate(root_name, root_name, root_key.public_key(), root_key, ca=True)
        signer = _certificate(_name("genforge signer"), root_name, signer_key.public_key(), root_key, ca=False)
        write_private(tmp / "root-key.pem", private_pem(root_key))
        write_private(tmp / "signer-key.pem", private_pem(signer_key))
        (tmp / "root.pem").write_bytes(root.public_bytes(serialization.Encoding.PEM))
        (tmp / "signer.pem").write_bytes(signer.public_bytes(serialization.Encoding.PEM))
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / "signer.pem").is_file():
                raise
    except OSError as e:
        raise ProvenanceError(f"cannot write the C2PA certificates in {folder} ({e.strerror or e}); set "
                              "GENFORGE_CONFIG to a folder you can write") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_signers: dict[str, object] = {}
_lock = threading.Lock()


def _signer():
    """c2pa's Signer for this machine's chain (made at first use), one per process."""
    import c2pa
    folder = chain_folder()
    with _lock:
        if not (folder / "signer.pem").is_file():
            _make_chain(folder)
        if str(folder) not in _signers:
            try:
                chain = (folder / "signer.pem").read_bytes() + (folder / "root.pem").read_bytes()
                key = (folder / "signer-key.pem").read_bytes()
            except OSError as e:
                raise ProvenanceError(f"the C2PA certificates in {folder} cannot be read ({e.strerror or e}); move "
                                      "the folder away and genforge makes a new chain") from None
            _signers[str(folder)] = c2pa.Signer.from_info(
                c2pa.C2paSignerInfo(alg=b"es256", sign_cert=chain, private_key=key, ta_url=None))
        return _signers[str(folder)]


def embed(png: bytes, manifest: dict) -> bytes:
    """PNG bytes with a C2PA manifest store added, signed by this machine's chain; `manifest` is
    genforge's (build_manifest's, with its `image`), carried as the org.genforge.provenance
    assertion. No thumbnail: it would be larger than the picture."""
    import io

    import c2pa
    require()
    claim = {"claim_generator_info": [{"name": "genforge", "version": manifest.get("version", "")}],
             "title": f"genforge {manifest.get('operation', '')}".strip(), "format": "image/png",
             "assertions": [
                 {"label": "c2pa.actions", "data": {"actions": [{
                     "action": "c2pa.created", "digitalSourceType": AI_MADE,
                     "description": f"genforge {manifest.get('operation', '')} with a "
                                    f"{(manifest.get('model') or {}).get('family', '')} model"}]}},
                 {"label": ASSERTION, "data": manifest}]}
    context = c2pa.Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    out = io.BytesIO()
    try:
        c2pa.Builder(json.dumps(claim), context=context).sign(_signer(), "image/png", io.BytesIO(png), out)
    except c2pa.C2paError as e:
        raise ProvenanceError(f"C2PA signing failed ({e}); sign without --c2pa, or move {chain_folder()} away "
                              "and genforge makes a new chain") from None
    return out.getvalue()


def read(data: bytes, mime: str = "image/png") -> dict | None:
    """The C2PA verdict on an image's bytes, or None when it has no C2PA manifest (or c2pa-python
    is not installed): {"state": "Trusted" | "Valid" | "Invalid", "trusted_here": whether this
    machine's root vouches for the signer, "signer", "failures": the failed checks' codes}.
    "Valid" means intact but signed by a certificate this machine does not trust."""
    if not available():
        return None
    import io

    import c2pa
    root = chain_folder() / "root.pem"
    settings = {"verify": {"verify_trust": True}}
    if root.is_file():
        settings["trust"] = {"trust_anchors": root.read_text()}
    try:
        reader = c2pa.Reader(mime, io.BytesIO(data), context=c2pa.Context.from_dict(settings))
        store = json.loads(reader.json())
        state = reader.get_validation_state()
    except c2pa.C2paError.ManifestNotFound:
        return None
    except (c2pa.C2paError, ValueError) as e:  # a damaged store: there, and not valid
        return {"state": "Invalid", "trusted_here": False, "signer": None, "failures": [f"unreadable: {e}"[:200]]}
    active = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    info = active.get("signature_info") or {}
    failures = [s.get("code") for s in store.get("validation_status") or [] if s.get("code")]
    signer = info.get("common_name")
    return {"state": state, "trusted_here": state == "Trusted", "failures": failures,
            "signer": f"{signer} ({info.get('issuer')})" if signer else None}


__all__ = ["ASSERTION", "available", "chain_folder", "embed", "read", "require"]
