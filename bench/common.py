"""What every benchmark script shares: the machine line and BENCHMARKS.md's marked blocks."""

from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import shlex
import sys
from pathlib import Path

import torch


def machine() -> str:
    """CPU model, cores and torch set-up: `uname -m` alone says too little to compare numbers."""
    arch = platform.processor() or platform.machine()
    try:
        models = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    except OSError:
        models = []
    cpu = f"{arch}, {models[0]}" if models else arch
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} torch threads"


def command() -> str:
    return shlex.join([Path(sys.executable).name, *sys.argv])


def block_header(start: str, title: str, *notes: str) -> list[str]:
    """The opening lines of a block: its marker, a title, when, where and how it was measured, notes."""
    return [start, f"## {title}", "",
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            f"- machine: {machine()}, cpu", f"- command: `{command()}`", *(f"- {note}" for note in notes), ""]


def write_block(path: Path, block: str, start: str, end: str) -> None:
    """Replaces the block between the markers `start` and `end` in `path`, or appends it."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    i, j = text.find(start), text.find(end)
    if i != -1 and j > i:
        text = text[:i] + block + text[j + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def model_label(model) -> str:
    """The model's name and each setting of its config that differs from the model's default."""
    config, default = model.module.config, type(model.module.config)()
    changed = [f"{f.name}={getattr(config, f.name)}" for f in dataclasses.fields(config)
               if f.name not in ("image_shape", "num_classes", "batch_size")
               and getattr(config, f.name) != getattr(default, f.name)]
    # The batch a run trained with is the train config's; the model config keeps its default.
    batch = model.run_config.get("train", {}).get("batch_size")
    if batch is not None and batch != getattr(default, "batch_size", batch):
        changed.append(f"batch_size={batch}")
    return " ".join([model.name, *changed])
