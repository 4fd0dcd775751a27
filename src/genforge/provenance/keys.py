"""This machine's signing key: an Ed25519 key made on first use in the user's config folder.

    key = signing_key()            # made and kept at first use
    key.fingerprint                # "3f9a0c1d2e4b5a67": what `genforge keys show` and `verify` print
    key.sign(b"...")               # 64 bytes

Where: `GENFORGE_CONFIG` if set, else `$XDG_CONFIG_HOME/genforge`, else `~/.config/genforge`, in
`signing-key.pem` (PKCS#8, unencrypted, mode 0600, in a folder of mode 0700). Never inside a run
directory: a run is shared and copied, and a private key copied with it would let anyone sign as
this machine. A key file that others may read is refused, as ssh refuses one.

`new_key()` keeps the old key as `signing-key.<UTC time>.pem` beside it: images signed with it
still verify (the public key travels in each manifest), and `verify` still recognises it as this
machine's. Nothing here ever deletes or overwrites a key.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import ProvenanceError

KEY_FILE = "signing-key.pem"
BACKUP_GLOB = "signing-key.*.pem"
FINGERPRINT_HEX = 16  # hex digits of SHA-256(public key) shown as a key's name (64 bits)


def config_dir() -> Path:
    """The user's genforge config folder (GENFORGE_CONFIG, else XDG_CONFIG_HOME/genforge, else
    ~/.config/genforge). Not made here."""
    if os.environ.get("GENFORGE_CONFIG"):
        return Path(os.environ["GENFORGE_CONFIG"]).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".config") / "genforge"


def key_path() -> Path:
    return config_dir() / KEY_FILE


def fingerprint(public_raw: bytes) -> str:
    """A key's short name: the first 16 hex digits of the SHA-256 of its 32 raw public-key bytes."""
    return hashlib.sha256(public_raw).hexdigest()[:FINGERPRINT_HEX]


@dataclass(frozen=True)
class SigningKey:
    """A private key loaded from `path`, with its public half in the forms manifests use."""
    private: Ed25519PrivateKey
    path: Path

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode("ascii")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_raw)

    def sign(self, data: bytes) -> bytes:
        return self.private.sign(data)

    def public_pem(self) -> bytes:
        """The public key as PEM (SubjectPublicKeyInfo): safe to give anyone."""
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


def _run_directory_around(folder: Path) -> Path | None:
    """The genforge run directory `folder` is in (or is), if any: a folder with config.json and
    weights, at `folder` or above it."""
    folder = folder.resolve()
    for place in (folder, *folder.parents):
        if (place / "config.json").is_file() and any((place / name).is_file() for name in
                                                     ("model.safetensors", "checkpoint.safetensors")):
            return place
    return None


def _check_folder(folder: Path) -> None:
    run = _run_directory_around(folder)
    if run is not None:
        raise ProvenanceError(f"the key folder {folder} is inside the run directory {run}; a signing key must "
                              "never travel with a run: set GENFORGE_CONFIG to a folder of your own")


def _check_private(path: Path, st_mode: int) -> None:
    """Refuses a key file that others may read or write (POSIX modes only)."""
    if os.name != "posix":
        return
    mode = st_mode & 0o777
    if mode & 0o077:
        raise ProvenanceError(f"the signing key {path} can be read by others (mode {mode:04o}); "
                              f"make it private with chmod 600 {path}")


def _load(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as e:
        raise ProvenanceError(f"the signing key {path} is damaged or not a PEM private key ({e}); "
                              "`genforge keys new` makes a new one and keeps this file beside it") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ProvenanceError(f"the signing key {path} is not an Ed25519 key; "
                              "`genforge keys new` makes a new one and keeps this file beside it")
    return key


def make_folder(folder: Path) -> None:
    """The config folder (or one inside it), made private (0700); refused inside a run directory."""
    _check_folder(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise ProvenanceError(f"cannot make the key folder {folder} ({e.strerror or e}); set GENFORGE_CONFIG "
                              "to a folder you can write") from None


def write_private(path: Path, data: bytes) -> None:
    """`data` at `path`, mode 0600 from the first byte: written to a private temporary file and
    linked into place, so no reader ever sees half a file and, of two processes writing one at
    once, the first wins (the second keeps the first's file). Never overwrites."""
    folder = path.parent
    tmp = folder / f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made one first: use it
        except OSError:  # a file system without hard links
            if not path.exists():
                os.rename(tmp, path)
    except OSError as e:
        raise ProvenanceError(f"cannot write the signing key in {folder} ({e.strerror or e}); set GENFORGE_CONFIG "
                              "to a folder you can write") from None
    finally:
        tmp.unlink(missing_ok=True)


def private_pem(key) -> bytes:
    """A private key as unencrypted PKCS#8 PEM (kept only in files of mode 0600)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_new(path: Path) -> None:
    """A new Ed25519 key at `path` (write_private: 0600, never half written, never overwritten)."""
    make_folder(path.parent)
    write_private(path, private_pem(Ed25519PrivateKey.generate()))


_cache: dict[tuple, SigningKey] = {}
_lock = threading.Lock()


def signing_key(create: bool = True) -> SigningKey | None:
    """This machine's key, made on first use (`create`); None when there is none and `create` is
    False. Read once per process while the file is unchanged (the server signs every answer)."""
    path = key_path()
    with _lock:
        if not path.exists():
            if not create:
                return None
            _write_new(path)
        _check_folder(path.parent)
        stat = path.stat()
        _check_private(path, stat.st_mode)  # every time: a chmod changes no other part of the stat
        ident = (str(path), stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if ident not in _cache:
            _cache.clear()
            _cache[ident] = SigningKey(_load(path), path)
        return _cache[ident]


def backups() -> list[Path]:
    """The kept earlier keys (`keys new`), oldest first."""
    return sorted(config_dir().glob(BACKUP_GLOB))


def kept_keys() -> list[tuple[Path, str | None]]:
    """(path, fingerprint) of each kept earlier key, oldest first; None for a damaged file."""
    out = []
    for path in backups():
        try:
            public = _load(path).public_key()
        except (ProvenanceError, OSError):
            out.append((path, None))
            continue
        out.append((path, fingerprint(public.public_bytes(serialization.Encoding.Raw,
                                                           serialization.PublicFormat.Raw))))
    return out


def own_fingerprints() -> dict[str, str]:
    """{fingerprint: "current" | "backup"} of this machine's keys; nothing is made."""
    found = {name: "backup" for _, name in kept_keys() if name is not None}
    current = signing_key(create=False)
    if current is not None:
        found[current.fingerprint] = "current"
    return found


def new_key() -> tuple[SigningKey, Path | None]:
    """A fresh key in place of the current one, which is kept (renamed, never deleted) as
    signing-key.<UTC time>.pem; answers (the new key, the backup's path or None)."""
    path = key_path()
    backup = None
    with _lock:
        if path.exists():
            _check_folder(path.parent)
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            backup = path.with_name(f"signing-key.{stamp}.pem")
            n = 2
            while backup.exists():  # two keys in one second: never overwrite a backup
                backup = path.with_name(f"signing-key.{stamp}-{n}.pem")
                n += 1
            os.rename(path, backup)  # moved, never copied and deleted: the key is never lost
        _cache.clear()
    return signing_key(create=True), backup


__all__ = ["SigningKey", "backups", "config_dir", "fingerprint", "kept_keys", "key_path", "make_folder", "new_key",
           "own_fingerprints", "private_pem", "signing_key", "write_private"]
