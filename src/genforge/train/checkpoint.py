"""Checkpoints as safetensors, written atomically.

One file holds everything training needs to continue exactly where it stopped: weights
(with BatchNorm buffers), every optimiser's state, the torch RNG and the step count. It is
written to a temporary file, flushed to disk and renamed over the old one, so a process
killed at any instant leaves either the old or the new checkpoint, never half of one.
safetensors rather than `torch.save`: loading it runs no code, whoever made the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ..errors import RunError


def atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # Make the rename itself durable.
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a safetensors file; a damaged file raises RunError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RunError(f"cannot read {path}: {e.strerror}") from None
    try:
        tensors = st_load(data)
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + header_len]).get("__metadata__", {}) or {}
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise RunError(f"{path} is not a readable safetensors file ({e})") from None
    return tensors, meta


def _state_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}


def save_weights(path: Path, model: nn.Module, metadata: dict[str, str] | None = None) -> None:
    atomic_write(path, st_save(_state_tensors(model), metadata=metadata))


def load_weights(model: nn.Module, tensors: dict[str, torch.Tensor], source: Path) -> None:
    """Loads weights, with one readable line when they belong to another model or config."""
    own = model.state_dict()
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    wrong = [k for k in own if k in tensors and tensors[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        detail = (f"shape of {wrong[0]} is {tuple(tensors[wrong[0]].shape)}, config wants {tuple(own[wrong[0]].shape)}"
                  if wrong else f"{len(missing)} missing and {len(unexpected)} unexpected tensors"
                  + (f" (e.g. {(missing or unexpected)[0]})"))
        raise RunError(f"{source} does not match its model config: {detail}")
    model.load_state_dict(tensors)


def save_checkpoint(path: Path, model: nn.Module, optimizers: dict[str, torch.optim.Optimizer],
                    state: dict) -> None:
    """Writes weights, optimiser states, RNG state and `state` (JSON-able) to one file."""
    tensors = {f"model.{k}": v for k, v in _state_tensors(model).items()}
    groups = {}
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        groups[name] = sd["param_groups"]
        for pid, st in sd["state"].items():
            for key, value in st.items():
                t = value if torch.is_tensor(value) else torch.tensor(value)
                tensors[f"optim.{name}.{pid}.{key}"] = t.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"state": json.dumps(state), "param_groups": json.dumps(groups)}
    atomic_write(path, st_save(tensors, metadata=meta))


def load_checkpoint(path: Path, model: nn.Module, optimizers: dict[str, torch.optim.Optimizer]) -> dict:
    """Restores what `save_checkpoint` wrote; returns the saved `state` dict."""
    tensors, meta = read_safetensors(path)
    try:
        state = json.loads(meta["state"])
        groups = json.loads(meta["param_groups"])
    except (KeyError, ValueError):
        raise RunError(f"{path} is not a genforge training checkpoint (no training state in it)") from None
    load_weights(model, {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, path)
    device = next(model.parameters()).device
    for name, opt in optimizers.items():
        if name not in groups:
            raise RunError(f"{path} has no state for optimiser {name!r}; it was written by another model")
        per_param: dict[int, dict] = {}
        prefix = f"optim.{name}."
        for key, value in tensors.items():
            if key.startswith(prefix):
                pid, field = key[len(prefix):].split(".", 1)
                per_param.setdefault(int(pid), {})[field] = value.to(device) if field != "step" else value
        try:
            opt.load_state_dict({"state": per_param, "param_groups": groups[name]})
        except (ValueError, KeyError) as e:
            raise RunError(f"{path}: optimiser {name!r} state does not fit the model ({e})") from None
    torch.set_rng_state(tensors["rng.torch"])
    return state
