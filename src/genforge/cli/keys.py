"""`genforge keys show|export|new`: this machine's signing key, which signs what genforge writes.

    genforge keys show                 # its fingerprint, where it is, the earlier keys kept
    genforge keys export [--out FILE]  # the PUBLIC key as PEM, to give to whoever checks your images
    genforge keys new                  # a fresh key; the old one is kept as a dated backup

The private key never leaves its file: nothing here prints or exports it.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path

from ..errors import GenforgeError

ACTIONS = ("show", "export", "new")


def add_parser(sub) -> None:
    p = sub.add_parser("keys", help="this machine's key that signs the images genforge writes", description=(
        "show: the key's fingerprint and file (made on first use in the config folder: GENFORGE_CONFIG, else "
        "$XDG_CONFIG_HOME/genforge, else ~/.config/genforge). export: the public key as PEM, on standard output "
        "or into --out FILE. new: a fresh key; the old one is kept beside it as signing-key.<UTC time>.pem, so "
        "images it signed still verify as this machine's. The private key is never printed."))
    p.add_argument("action", choices=ACTIONS)
    p.add_argument("--out", help="export: write the public key PEM to this file instead of standard output")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..provenance.keys import key_path
    if args.out is not None and args.action != "export":
        raise GenforgeError(f"--out belongs to `genforge keys export`, not `genforge keys {args.action}`")
    made = not key_path().exists()
    if args.action == "new":
        return new()
    if args.action == "export":
        return export(args.out)
    return show(made)


def _made(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def show(made: bool) -> int:
    from ..provenance.keys import kept_keys, signing_key
    key = signing_key()
    if made:
        print("made this machine's signing key (first use)")
    print(f"key:      {key.fingerprint}")
    print(f"public:   {key.public_b64}")
    print(f"file:     {key.path} (private, mode 0600: never share it; `genforge keys export` gives the public key)")
    print(f"made:     {_made(key.path)}")
    for path, name in kept_keys():
        print(f"earlier:  {name or '(damaged file)'}  {path.name}")
    return 0


def export(out: str | None) -> int:
    from ..provenance.keys import signing_key
    key = signing_key()
    pem = key.public_pem()
    if out is None:
        sys.stdout.write(pem.decode("ascii"))
        return 0
    path = Path(out)
    if path.exists() and path.resolve() == key.path.resolve():
        raise GenforgeError(f"--out {out} is the private key's own file; give another file for the public key")
    if path.is_dir():
        raise GenforgeError(f"--out {out} is a folder; give a file, e.g. {path / 'genforge-key.pem'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pem)
    print(f"wrote the public key {key.fingerprint} to {path}")
    return 0


def new() -> int:
    from ..provenance.keys import new_key
    key, backup = new_key()
    print(f"new key:  {key.fingerprint} in {key.path}")
    if backup is not None:
        print(f"kept the earlier key as {backup} (images it signed still verify, as this machine's)")
    return 0
