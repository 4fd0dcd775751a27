"""The small interface between a model and everything else.

A model is a config dataclass plus an `nn.Module`. The trainer only ever calls
`configure_optimizers()` and `train_step()`; everything after training (sampling,
evaluation, editing) calls `sample()` and, for autoencoders, `encode()` / `decode()`.

Images cross this interface as float tensors (N, C, H, W) in [0, 1], always. A model
that wants [-1, 1] (a tanh generator) converts inside; this keeps the classic
"sigmoid decoder fed [-1, 1] data" mistake out of every caller.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch
from torch import nn

from ..config_check import Checked, ImageShape, Number, Whole, check_names
from .blocks import upsampling_plan


@dataclass
class ModelConfig(Checked):
    """Fields every model has; each model's config adds its own, with a rule for each in its
    RULES table (config_check.py): building a config checks every value."""

    image_shape: tuple[int, int, int] = (1, 28, 28)
    latent_dim: int = 64
    lr: float = 2e-4
    batch_size: int = 128  # the default `train --batch-size`; a model knows what suits it

    label: ClassVar[str] = "model config"  # "<family> config", set by the family's class
    RULES = {"image_shape": ImageShape(), "latent_dim": Whole(min=1), "lr": Number(gt=0),
             "batch_size": Whole(min=1)}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """The config of these fields (unknown names are a ConfigError listing the valid ones)."""
        check_names(cls.label, d, [f.name for f in fields(cls)])
        return cls(**d)

    def check_image_size(self) -> None:
        """The convolutional families' ladders start at 4, 7 or 8 pixels and double: 28, 32 and 64 work."""
        try:
            upsampling_plan(self.image_shape[1])
        except ValueError:
            raise self.refuse("image_shape", "(channels, size, size) with a size of 28 or 32 "
                              "(or 4, 7 or 8 times a power of two, such as 64)") from None


class GenerativeModel(nn.Module):
    """Base class. Subclasses set `name`, `Config`, `is_autoencoder`, and implement `sample`."""

    name: ClassVar[str] = ""
    Config: ClassVar[type[ModelConfig]] = ModelConfig
    is_autoencoder: ClassVar[bool] = False  # has encode() / decode()
    is_conditional: ClassVar[bool] = False  # generate() uses labels (config.num_classes of them)
    has_discriminator: ClassVar[bool] = False  # has discriminate()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.name and "Config" in cls.__dict__:  # messages name the family: "vae config: ..."
            cls.Config.label = f"{cls.name} config"

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config

    # --- what the trainer calls -------------------------------------------------------
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": torch.optim.Adam(self.parameters(), lr=self.config.lr)}

    def train_step(self, x: torch.Tensor, y: torch.Tensor | None,
                   optimizers: dict[str, torch.optim.Optimizer]) -> dict[str, torch.Tensor]:
        """One optimisation step on a batch; returns detached losses for logging.

        Single-objective models only implement `loss`; a GAN overrides this to drive
        its two optimisers.
        """
        opt = optimizers["model"]
        losses = self.loss(x, y)
        opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        opt.step()
        return {k: v.detach() for k, v in losses.items()}

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} has no single loss; it overrides train_step")

    # --- what users call ----------------------------------------------------------------
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] from latent codes (the decoder of an autoencoder)."""
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator | None = None,
               labels: torch.Tensor | None = None) -> torch.Tensor:
        """n images in [0, 1] from the prior. Call in eval mode under `torch.inference_mode()`.

        A conditional model given no labels draws them uniformly, so its unlabelled samples
        cover every class (what evaluation expects)."""
        z = self.latent(n, generator)
        if self.is_conditional and labels is None:
            labels = self.random_labels(n, generator)
        return self.generate(z, labels)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def random_labels(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randint(self.config.num_classes, (n,), generator=generator).to(self.device)

    def latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws n latent codes from the model's prior (standard normal), on the model's device."""
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        return z.to(self.device)

    # --- what autoencoders add (is_autoencoder) ---------------------------------------
    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x) (and the label, for a conditional model)."""
        raise NotImplementedError(f"{type(self).__name__} has no encoder")

    def decode(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Mean image in [0, 1] of p(x | z) (and the label, for a conditional model)."""
        raise NotImplementedError(f"{type(self).__name__} has no decoder")

    # --- what GANs add (has_discriminator) ------------------------------------------------
    def discriminate(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Realism logits (N,) for images in [0, 1]: higher means "looks real" to the critic."""
        raise NotImplementedError(f"{type(self).__name__} has no discriminator")

    def first_layer_weight(self) -> torch.Tensor | None:
        """Weight (out_features, latent_dim) of the generator's first linear map of z, for
        closed-form latent directions (SeFa); None where there is no such layer."""
        return None

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
