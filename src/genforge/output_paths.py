"""What an output path asks for, checked before any work is done.

Every command that writes files says which kinds of output it can write, as suffixes
(".png", ".npz", ".gif", ".json") and FOLDER; `check_output()` tells which one a path is, or
refuses it in one line. The rule is the same everywhere:

- a path that is an existing folder, or has no suffix, is a folder;
- otherwise its suffix says the format, and a suffix the command does not write is refused
  (`sample --out y.txt` used to write a folder of PNGs named y.txt);
- an existing file where a folder is wanted is refused, and so is a path whose folder cannot
  be made (a file in the way, or no permission to write there).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import OutputPathError

FOLDER = "folder"

DESCRIPTIONS = {FOLDER: "a folder (a path without a suffix)", ".png": "a .png file", ".npz": "a .npz file",
                ".gif": "a .gif file", ".json": "a .json file"}


def output_kind(path: str | Path) -> str:
    """FOLDER for an existing folder or a path without a suffix, else the suffix in lower case."""
    path = Path(path)
    if path.is_dir() or not path.suffix:
        return FOLDER
    return path.suffix.lower()


def _choices(accepts: Sequence[str]) -> str:
    words = [DESCRIPTIONS.get(kind, f"a {kind} file") for kind in accepts]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def check_output(path: str | Path, accepts: Sequence[str], flag: str = "", hint: str = "") -> str:
    """The kind of output `path` is (one of `accepts`: suffixes such as ".png", or FOLDER), after
    checking that it can be written; otherwise OutputPathError in one line. `flag` names the
    option in the message (e.g. "--out"); `hint` is added to a refusal (e.g. "add --grid ...")."""
    path = Path(path)
    name = f"{flag} {path}" if flag else str(path)
    kind = output_kind(path)
    if kind not in accepts:
        if kind != FOLDER:
            what = f": genforge does not write {path.suffix} files here"
        elif path.is_dir():
            what = " is an existing folder"
        else:
            what = " has no suffix, so it names a folder"
        raise OutputPathError(f"{name}{what}; give {_choices(accepts)}" + (f"; {hint}" if hint else ""))
    if kind == FOLDER and path.exists() and not path.is_dir():
        raise OutputPathError(f"{name} is an existing file, not a folder; give a folder")
    _check_can_create(path if kind == FOLDER else path.parent, name)
    return kind


def _check_can_create(folder: Path, name: str) -> None:
    """`folder` exists and can be written in, or can be made: its nearest existing ancestor is a
    folder that can be written in."""
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"{name}: cannot make the folder {folder}: {ancestor} is a file")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"{name}: cannot write in {ancestor} (permission denied)")


__all__ = ["FOLDER", "check_output", "output_kind"]
