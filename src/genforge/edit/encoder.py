"""A learned first guess for GAN inversion: the "hybrid" of the inversion literature
(Zhu et al. 2016, Bau et al. 2019).

A generator has no encoder, but it can make as many training pairs (z, G(z)) as one wants.
A small CNN learns to map G(z) back to z (a code loss, plus a pixel loss through the frozen
generator so that a code which decodes to the same picture counts as right). Latent search
then starts from the encoder's guess instead of random draws: fewer steps for the same fit.

The encoder is trained once per run and kept beside the model (inversion-encoder.safetensors,
written atomically, with the SHA-256 of the weights it was trained for) so later edits load it
in a blink, and a model trained further gets a new one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save as st_save
from torch import nn
from tqdm.auto import tqdm

from ..errors import GenforgeError
from ..models import GenerativeModel
from ..train.checkpoint import atomic_write, load_weights, read_safetensors
from ..train.run_dir import RunDir

FILE = "inversion-encoder.safetensors"


@dataclass(frozen=True)
class EncoderConfig:
    steps: int = 1500
    batch_size: int = 128
    lr: float = 2e-3
    width: int = 32
    pixel_weight: float = 10.0  # pixel MSE is ~1/10 of the code MSE early on; this lets both matter
    seed: int = 0


class InversionEncoder(nn.Module):
    """Images (N, C, H, W) in [0, 1] -> codes (N, latent_dim)."""

    def __init__(self, channels: int, image_size: int, latent_dim: int, width: int = 32):
        super().__init__()
        layers, c = [], channels
        for out in (width, 2 * width, 4 * width):  # 28 -> 14 -> 7 -> 3 (32 -> 16 -> 8 -> 4)
            layers += [nn.Conv2d(c, out, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            c = out
        self.features = nn.Sequential(*layers, nn.Flatten())
        side = image_size // 8
        self.head = nn.Linear(c * side * side, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features((x - 0.5) / 0.5))


def _new_encoder(model: GenerativeModel, width: int) -> InversionEncoder:
    c, h, _ = model.config.image_shape
    return InversionEncoder(c, h, model.config.latent_dim, width)


def train_inversion_encoder(model: GenerativeModel, config: EncoderConfig = EncoderConfig(),
                            progress: bool = False) -> InversionEncoder:
    """An encoder fitted to `config.steps` batches of the model's own (z, G(z)) pairs."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    encoder = _new_encoder(model, config.width).to(model.device).train()
    optimiser = torch.optim.Adam(encoder.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.steps)
    model.eval()
    bar = tqdm(range(config.steps), desc="inversion encoder", unit="step", disable=not progress, leave=False)
    for _ in bar:
        z = model.latent(config.batch_size, generator)
        labels = model.random_labels(config.batch_size, generator) if model.is_conditional else None
        with torch.no_grad():
            x = model.generate(z, labels)
        guess = encoder(x)
        loss = F.mse_loss(guess, z) + config.pixel_weight * F.mse_loss(model.generate(guess, labels), x)
        # Gradients for the encoder alone: the generator stays exactly as trained.
        grads = torch.autograd.grad(loss, list(encoder.parameters()))
        for p, g in zip(encoder.parameters(), grads):
            p.grad = g
        optimiser.step()
        schedule.step()
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    return encoder.eval()


def save_encoder(encoder: InversionEncoder, path: Path, config: EncoderConfig, model_sha256: str = "") -> None:
    tensors = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    metadata = {"config": json.dumps(asdict(config)), "model_sha256": model_sha256}
    atomic_write(path, st_save(tensors, metadata=metadata))


def load_encoder(model: GenerativeModel, path: Path) -> tuple[InversionEncoder, str]:
    """The encoder saved at `path`, and the SHA-256 of the model weights it was trained for."""
    tensors, metadata = read_safetensors(path)
    try:
        width = json.loads(metadata["config"])["width"]
    except (KeyError, ValueError, TypeError):
        raise GenforgeError(f"{path} is not a genforge inversion encoder; delete it to train a new one") from None
    encoder = _new_encoder(model, width)
    load_weights(encoder, tensors, path)
    return encoder.to(model.device).eval(), metadata.get("model_sha256", "")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""


def inversion_encoder(model: GenerativeModel, run_dir: str | Path | None,
                      config: EncoderConfig = EncoderConfig(), progress: bool = False) -> InversionEncoder:
    """The run's encoder: loaded from RUN_DIR/inversion-encoder.safetensors when it was trained
    for the run's present weights, else trained (and saved there when the run has a directory)."""
    if run_dir is None:
        return train_inversion_encoder(model, config, progress)
    path = Path(run_dir) / FILE
    weights = _sha256(RunDir(run_dir).weights)
    if path.is_file():
        encoder, trained_for = load_encoder(model, path)
        if trained_for == weights:
            return encoder
    encoder = train_inversion_encoder(model, config, progress)
    save_encoder(encoder, path, config, weights)
    return encoder


def guess_codes(encoder: InversionEncoder, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    with torch.inference_mode():
        return torch.cat([encoder(chunk) for chunk in x.split(batch_size)])
