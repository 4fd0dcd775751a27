"""Model families. A new family is one new file plus one line in MODELS."""

from __future__ import annotations

from dataclasses import asdict

from ..errors import UnknownName
from .base import GenerativeModel, ModelConfig
from .beta_vae import BetaVAE
from .cgan import CGAN
from .cvae import CVAE
from .cvae_gan import CVAEGAN
from .dcgan import DCGAN
from .reference import RefDCGAN, RefVAE
from .sngan import SNGAN
from .vae import VAE
from .wgan_gp import WGANGP

MODELS: dict[str, type[GenerativeModel]] = {
    m.name: m for m in (VAE, DCGAN, RefVAE, RefDCGAN, BetaVAE, CVAE, WGANGP, SNGAN, CGAN, CVAEGAN)}


def model_class(name: str) -> type[GenerativeModel]:
    try:
        return MODELS[name.lower()]
    except KeyError:
        raise UnknownName(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


def build_model(name: str, **config) -> GenerativeModel:
    """Builds a fresh model from its name and config fields (unknown fields are an error)."""
    cls = model_class(name)
    try:
        cfg = cls.Config.from_dict(config)
        return cls(cfg)
    except (TypeError, ValueError) as e:
        raise UnknownName(f"model {name!r}: {e}") from None


def model_config_dict(model: GenerativeModel) -> dict:
    return asdict(model.config)


__all__ = ["MODELS", "GenerativeModel", "ModelConfig", "build_model", "model_class", "model_config_dict"]
