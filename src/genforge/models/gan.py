"""The GAN training recipe shared by every adversarial family: the loss, the penalties, the
update schedule, augmentation and weight averaging are config switches; a family only
chooses its networks and its defaults."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config_check import NameList, Number, OneOf, Whole
from .base import GenerativeModel, ModelConfig
from .diffaugment import AUGMENTATIONS, diff_augment, parse_policy
from .ema import ema_copy, update_ema
from .gan_losses import (LOSSES, discriminator_loss, generator_loss, gradient_penalty, mode_seeking_penalty,
                         r1_penalty)


@dataclass
class GANConfig(ModelConfig):
    latent_dim: int = 64
    # Narrow nets and large steps: in a budget of minutes on a CPU the GANs here were
    # starved of updates, not of capacity. Width 32 runs ~2.6x more steps than 64, and the
    # families' learning rates are 2-16x the usual 2e-4 (bench/trials/sweep.py, BENCHMARKS.md:
    # cgan FID 419 -> 9.7 after 5 minutes on MNIST).
    g_width: int = 32
    d_width: int = 32
    lr: float = 2e-4  # the generator's
    lr_d: float | None = None  # None: same as lr; a different value is the two time-scale rule (TTUR)
    beta1: float = 0.5
    beta2: float = 0.999
    n_critic: int = 1  # discriminator steps per generator step
    loss: str = "ns"  # "ns" (non-saturating logistic), "hinge" or "wasserstein"
    gp_weight: float = 0.0  # WGAN-GP gradient penalty; 0 is off
    r1_gamma: float = 0.0  # R1 penalty on real images; 0 is off
    label_smoothing: float = 0.0  # one-sided, "ns" only; 0 is off
    ema_decay: float = 0.999  # sample from an average of the generator's weights; 0 is off
    diffaug: str = ""  # comma list of color, translation, cutout
    # Group size of the discriminator's minibatch-spread feature; 0 is off. Tried for
    # Fashion-MNIST recall: no gain, FID 15.4 -> 17.7 after 5 minutes (BENCHMARKS.md).
    minibatch_std: int = 0
    # Weight of the mode-seeking penalty (gan_losses.py): the fakes of a batch come in pairs under
    # one label, and near-identical pairs are penalised; 0 is off. Tried for Fashion-MNIST recall:
    # lost at weights 0.3, 1 and 3 (FID 39.0 -> 52.1, 74.0, 163.3 after 5 minutes; BENCHMARKS.md).
    mode_seeking: float = 0.0
    num_classes: int = 10  # used by conditional families
    batch_size: int = 64

    RULES = {"g_width": Whole(min=1), "d_width": Whole(min=1),
             "lr_d": Number(gt=0, optional=True, none_means="the same as lr"),
             "beta1": Number(ge=0, lt=1), "beta2": Number(ge=0, lt=1), "n_critic": Whole(min=1),
             "loss": OneOf(*LOSSES), "gp_weight": Number(ge=0), "r1_gamma": Number(ge=0),
             "label_smoothing": Number(ge=0, lt=0.5), "ema_decay": Number(ge=0, lt=1),
             "diffaug": NameList(*AUGMENTATIONS), "minibatch_std": Whole(min=0), "mode_seeking": Number(ge=0),
             "num_classes": Whole(min=2)}

    def cross_check(self):
        self.check_image_size()
        if self.label_smoothing and self.loss != "ns":
            raise self.refuse("label_smoothing", f"0 with the {self.loss!r} loss (it applies to the 'ns' loss only)")


class GAN(GenerativeModel):
    """Holds `generator`, `discriminator` and `generator_ema` (the weight average that
    samples, or None). Both networks work in [-1, 1] and take `labels` (None unless the
    family is conditional): G(z, labels), D(x, labels)."""

    Config = GANConfig
    has_discriminator = True

    def __init__(self, config: GANConfig):
        super().__init__(config)
        self.generator = self.make_generator(config)
        self.discriminator = self.make_discriminator(config)
        self.generator_ema = ema_copy(self.generator) if config.ema_decay else None
        # A buffer, so the warm-up of the average survives checkpoints.
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))
        self.augmentations = parse_policy(config.diffaug)

    def make_generator(self, config: GANConfig) -> nn.Module:
        raise NotImplementedError

    def make_discriminator(self, config: GANConfig) -> nn.Module:
        raise NotImplementedError

    def configure_optimizers(self):
        c = self.config
        betas = (c.beta1, c.beta2)
        return {
            "generator": torch.optim.Adam(self.generator.parameters(), lr=c.lr, betas=betas),
            "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=c.lr_d or c.lr, betas=betas),
        }

    # --- training ---------------------------------------------------------------------
    def train_step(self, x, y, optimizers):
        labels = self._labels(y, len(x))
        fake_labels = self._paired(labels) if self.config.mode_seeking else labels
        real = x * 2 - 1
        for _ in range(self.config.n_critic):
            # Fresh noise for every critic step; the last fake is reused by the generator step.
            z = self.latent(len(x))
            fake = self.generator(z, fake_labels)
            stats = self._discriminator_step(real, fake.detach(), labels, fake_labels, optimizers["discriminator"])
        stats.update(self._generator_step(fake, z, fake_labels, optimizers["generator"]))
        if self.generator_ema is not None:
            update_ema(self.generator_ema, self.generator, self.config.ema_decay, int(self.ema_updates))
            self.ema_updates += 1
        return stats

    def _critic(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        """D as trained: behind the augmentations, so real and fake see the same ones."""
        return self.discriminator(diff_augment(x, self.augmentations), labels)

    @staticmethod
    def _paired(labels: torch.Tensor | None) -> torch.Tensor | None:
        """The first half of the labels twice over, so fake i and fake i + N/2 share a class
        (the mode-seeking penalty compares them); an odd batch's last fake keeps its own."""
        if labels is None:
            return None
        half = len(labels) // 2
        return torch.cat([labels[:half], labels[:half], labels[2 * half:]])

    def _discriminator_step(self, real, fake, labels, fake_labels, opt) -> dict[str, torch.Tensor]:
        c = self.config
        real_logits, fake_logits = self._critic(real, labels), self._critic(fake, fake_labels)
        loss = discriminator_loss(c.loss, real_logits, fake_logits, c.label_smoothing)
        stats = {}
        critic = lambda images: self._critic(images, labels)  # noqa: E731 - the penalties' view of D
        if c.gp_weight:
            stats["gp"] = gradient_penalty(critic, real, fake)
            loss = loss + c.gp_weight * stats["gp"]
        if c.r1_gamma:
            stats["r1"] = r1_penalty(critic, real, c.r1_gamma)
            loss = loss + stats["r1"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss_d": loss.detach(), **{k: v.detach() for k, v in stats.items()},
                # D's belief that each batch is real; the trainer watches for a D that wins outright.
                "d_real": torch.sigmoid(real_logits).mean().detach(),
                "d_fake": torch.sigmoid(fake_logits).mean().detach()}

    def _generator_step(self, fake, z, labels, opt) -> dict[str, torch.Tensor]:
        self.discriminator.requires_grad_(False)  # the generator step needs no gradients for D's weights
        loss = generator_loss(self.config.loss, self._critic(fake, labels))
        stats = {"loss_g": loss.detach()}
        if self.config.mode_seeking:
            penalty = mode_seeking_penalty(fake.float(), z)
            loss = loss + self.config.mode_seeking * penalty
            stats["mode_seeking"] = penalty.detach()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        self.discriminator.requires_grad_(True)
        return stats

    # --- using the trained model ------------------------------------------------------------
    def sampling_generator(self) -> nn.Module:
        return self.generator_ema if self.generator_ema is not None else self.generator

    def generate(self, z, labels=None):
        return (self.sampling_generator()(z, self._labels(labels, len(z))) + 1) / 2

    def discriminate(self, x, labels=None):
        return self.discriminator(x * 2 - 1, self._labels(labels, len(x)))

    def first_layer_weight(self):
        return self.sampling_generator().project.weight

    def _labels(self, labels: torch.Tensor | None, n: int) -> torch.Tensor | None:
        """The labels a conditional family needs, checked; None for the others."""
        if not self.is_conditional:
            return None
        if labels is None:
            raise ValueError(f"{self.name} is conditional: it needs class labels (data set with labels)")
        if labels.shape != (n,) or labels.min() < 0 or labels.max() >= self.config.num_classes:
            raise ValueError(f"{self.name} needs {n} labels in [0, {self.config.num_classes}), "
                             f"got shape {tuple(labels.shape)}")
        return labels
