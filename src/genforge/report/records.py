"""What other commands leave in a run directory for its report: the last evaluation
(`genforge eval RUN_DIR` -> eval.json) and edit pictures (`genforge edit --report` -> edits/).

Each record carries a fingerprint of the model's weights and latent prior at the time, so
the report can say when a record describes an earlier state of the run (trained further,
or a prior refitted since) instead of passing it off as the model's.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

from ..errors import GenforgeError
from ..priors import card_path
from ..train.checkpoint import atomic_write
from ..train.run_dir import RunDir


def fingerprint(run: RunDir) -> str:
    """A digest of the files that decide what the model samples: its weights and its fitted prior."""
    h = hashlib.blake2b(digest_size=12)
    for path in (run.weights if run.weights.exists() else run.checkpoint, run.prior, card_path(run.prior)):
        h.update(path.name.encode())
        if path.exists():
            h.update(path.read_bytes())
    return h.hexdigest()


def is_current(record: dict, run: RunDir) -> bool:
    """Whether a stored record was made from the model as it is now."""
    return record.get("fingerprint") == fingerprint(run)


def record_eval(run_dir: str | Path, result: dict) -> Path:
    """Stores the results of evaluating a run (`metrics.evaluate.evaluate_model`) as RUN/eval.json,
    replacing an earlier one, and rewrites the run's report (if it has one) to show them."""
    from .run_report import refresh_report
    run = RunDir(run_dir)
    atomic_write(run.eval, (json.dumps({**result, "fingerprint": fingerprint(run)}, indent=2) + "\n").encode())
    refresh_report(run.path)
    return run.eval


def read_eval(run: RunDir) -> dict | None:
    """The stored evaluation, or None (none stored, or a damaged file)."""
    try:
        return json.loads(run.eval.read_text())
    except (OSError, ValueError):
        return None


def add_edit(run_dir: str | Path, picture: str | Path, title: str, caption: str = "") -> Path:
    """Copies an edit's picture (a PNG) into RUN/edits/ with its title and caption beside it
    (NAME.json), replacing an earlier edit of the same title, and rewrites the run's report."""
    from .run_report import write_report
    picture, run = Path(picture), RunDir(run_dir)
    if picture.suffix.lower() != ".png" or not picture.is_file():
        raise GenforgeError(f"{picture}: only a PNG picture can be added to a run's report")
    name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "edit"
    run.edits.mkdir(parents=True, exist_ok=True)
    target = run.edits / f"{name}.png"
    if picture.resolve() != target.resolve():
        shutil.copyfile(picture, target)
    card = {"title": title, "caption": caption, "picture": target.name, "fingerprint": fingerprint(run)}
    atomic_write(target.with_suffix(".json"), (json.dumps(card, indent=2) + "\n").encode())
    write_report(run.path)
    return target


def read_edits(run: RunDir) -> list[dict]:
    """The edits added to the report, by name; a card whose picture is gone is skipped."""
    cards = []
    for path in sorted(run.edits.glob("*.json")) if run.edits.is_dir() else []:
        try:
            card = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if (run.edits / str(card.get("picture", ""))).is_file():
            cards.append(card)
    return cards
