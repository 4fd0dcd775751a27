"""A watermark directory on disk, and reading one back.

    MARK_DIR/
      config.json             what it marks (image shape, bits), its networks' sizes, its own
                              key, how it was trained and what was measured at the end
      watermark.safetensors   the embedder's and the extractor's weights (embedder.*, extractor.*)

Both are written atomically (a temporary file renamed over the old), as run checkpoints are,
and safetensors rather than pickle: loading a watermark someone sent runs no code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save as st_save

from ...errors import RunError
from ...train.checkpoint import atomic_write, load_weights, read_safetensors
from .bits import check_key
from .nets import Embedder, Extractor, MarkConfig

FORMAT = "genforge-watermark"
CONFIG, WEIGHTS = "config.json", "watermark.safetensors"


@dataclass
class Watermark:
    """A loaded watermark: its config, both networks in eval mode, and its own key."""

    config: MarkConfig
    embedder: Embedder
    extractor: Extractor
    key: str | None = None
    info: dict = field(default_factory=dict)  # the rest of config.json (training, measured)
    path: Path | None = None

    @property
    def bits(self) -> int:
        return self.config.bits

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.config.image_shape

    def to(self, device) -> "Watermark":
        self.embedder.to(device)
        self.extractor.to(device)
        return self


def save_watermark(path: str | Path, embedder: Embedder, extractor: Extractor, key: str, info: dict) -> Path:
    """Writes MARK_DIR/config.json and MARK_DIR/watermark.safetensors atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"embedder.{k}": v.detach().cpu().contiguous() for k, v in embedder.state_dict().items()}
    tensors |= {f"extractor.{k}": v.detach().cpu().contiguous() for k, v in extractor.state_dict().items()}
    atomic_write(path / WEIGHTS, st_save(tensors, metadata={"format": FORMAT}))
    config = {"format": FORMAT, "version": 1, "mark": embedder.config.to_dict(), "key": key, **info}
    atomic_write(path / CONFIG, (json.dumps(config, indent=2) + "\n").encode())
    return path


def load_watermark(path: str | Path | Watermark, device: str | torch.device = "cpu") -> Watermark:
    """The watermark of MARK_DIR (a Watermark is returned as it is); RunError in one line for a
    path that is not one."""
    if isinstance(path, Watermark):
        return path
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise RunError(f"{path} is not a watermark directory (no config.json); make one with "
                       "`genforge watermark train`")
    try:
        config = json.loads((path / CONFIG).read_text())
        if config.get("format") != FORMAT:
            raise ValueError
        mark = MarkConfig(**config["mark"])
    except (ValueError, KeyError, TypeError):
        raise RunError(f"{path / CONFIG} is damaged or not a genforge watermark config") from None
    tensors, _ = read_safetensors(path / WEIGHTS)
    embedder, extractor = Embedder(mark), Extractor(mark)
    load_weights(embedder, {k[9:]: v for k, v in tensors.items() if k.startswith("embedder.")}, path / WEIGHTS)
    load_weights(extractor, {k[10:]: v for k, v in tensors.items() if k.startswith("extractor.")}, path / WEIGHTS)
    key = config.get("key")
    key = check_key(key, mark.bits) if key is not None else None
    info = {k: v for k, v in config.items() if k not in ("format", "version", "mark", "key")}
    return Watermark(mark, embedder.eval(), extractor.eval(), key, info, path).to(device)
