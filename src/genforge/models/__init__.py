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
from .ref_dcgan_torch import RefDCGANTorch
from .resnet_gan import ResGAN, ResGANCond
from .sngan import SNGAN
from .vae import VAE
from .wgan_gp import WGANGP

MODELS: dict[str, type[GenerativeModel]] = {
    m.name: m for m in (VAE, DCGAN, RefVAE, RefDCGAN, BetaVAE, CVAE, WGANGP, SNGAN, CGAN, CVAEGAN, RefDCGANTorch,
                        ResGAN, ResGANCond)}


def model_class(name: str) -> type[GenerativeModel]:
    """The class of the model family `name` (case-insensitive); UnknownName lists the families."""
    try:
        return MODELS[name.lower()]
    except KeyError:
        raise UnknownName(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


def build_model(name: str, **config) -> GenerativeModel:
    """Builds a fresh model from its name and config fields. Every value is checked first
    (config_check.py): a bad one, or an unknown field, raises ConfigError naming the field."""
    cls = model_class(name)
    return cls(cls.Config.from_dict(config))


def model_config_dict(model: GenerativeModel) -> dict:
    """A model's config as a plain dict (what config.json stores and `build_model` takes back)."""
    return asdict(model.config)


__all__ = ["MODELS", "GenerativeModel", "ModelConfig", "build_model", "model_class", "model_config_dict"]
