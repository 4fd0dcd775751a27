"""Conditional VAE whose reconstructions a discriminator also judges: a VAE-GAN (Larsen et al.
2016), with the adaptive adversarial weight of Esser et al. (2021).

A VAE's pixel likelihood averages over whatever the code leaves open, so its images are smooth,
and smooth images fall outside the real images' neighbourhoods in feature space: Fashion-MNIST
cvae + mixture prior reaches precision 0.87 but recall 0.38 (BENCHMARKS.md). A projection
discriminator comparing reconstructions with the real images asks the decoder for the texture
the pixel loss averages away. The encoder, the code and the fitted latent prior stay as they
are, so sampling, editing and inpainting work as for `cvae`.

The adversarial gradient is scaled at the decoder's last layer to `adversarial_weight` times
the size of the pixel loss's gradient there, so one weight suits either likelihood and any data
set; the discriminator joins after `adversarial_start` steps of plain VAE training, once the
reconstructions look like the data. On Fashion-MNIST (15 minutes, GMM prior; BENCHMARKS.md) it
cuts the cvae's FID from 32.5 to 19.3 (3 seeds) and lifts recall a little (0.38 -> 0.44) at half
the images per second; weights 0.25 / 1 / 2 gave FID 20.8 / 21.5 / 64.7, so 0.5 is the default.
On MNIST: FID 6.0, recall 0.81 (3 seeds), against the cvae's 7.1 and 0.77. On Fashion-MNIST
the 32-dim code is what limits recall (decoding real images' codes reaches only 0.45); a
128-dim code with beta 0.02 gives FID 14.6 and recall 0.56 there, but is worse on MNIST (FID
13.2), so it is a setting (`--set latent_dim=128 --set beta=0.02`), not the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..config_check import Number, Whole
from .cvae import CVAE, CVAEConfig
from .gan_losses import discriminator_loss, generator_loss
from .gan_networks import Discriminator
from .vae import kl_to_standard_normal, reparameterize


@dataclass
class CVAEGANConfig(CVAEConfig):
    # The families table's cvae settings: a loose code samples best through the fitted prior.
    beta: float = 0.1
    latent_dim: int = 32
    adversarial_weight: float = 0.5
    adversarial_start: int = 1000
    d_width: int = 32
    lr_d: float = 1e-3

    RULES = {"adversarial_weight": Number(ge=0), "adversarial_start": Whole(min=0), "d_width": Whole(min=1),
             "lr_d": Number(gt=0)}


class CVAEGAN(CVAE):
    name = "cvae-gan"
    Config = CVAEGANConfig
    has_discriminator = True

    def __init__(self, config: CVAEGANConfig):
        super().__init__(config)
        self.discriminator = Discriminator(config.d_width, config.image_shape, spectral=True,
                                           num_classes=config.num_classes)
        # A buffer, so a resumed run knows whether the discriminator has joined yet.
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def configure_optimizers(self):
        autoencoder = [p for name, p in self.named_parameters() if not name.startswith("discriminator.")]
        return {"model": torch.optim.Adam(autoencoder, lr=self.config.lr),
                "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=self.config.lr_d,
                                                  betas=(0.5, 0.9))}

    def discriminate(self, x, labels=None):
        if labels is None:
            raise ValueError("the cvae-gan's discriminator is conditional: it needs the class labels")
        return self.discriminator(x * 2 - 1, labels.long())

    def train_step(self, x, y, optimizers):
        mu, logvar = self.encode(x, y)
        logits = self.decode_logits(reparameterize(mu, logvar), y)
        recon = -self.likelihood_of_logits(x, logits).mean()
        kl = kl_to_standard_normal(mu, logvar)
        loss = recon + self.config.beta * kl
        stats = {"recon": recon, "kl": kl}
        if self.step >= self.config.adversarial_start and self.config.adversarial_weight > 0:
            fake = torch.sigmoid(logits) * 2 - 1
            stats.update(self._discriminator_step(x * 2 - 1, fake.detach(), y, optimizers["discriminator"]))
            self.discriminator.requires_grad_(False)
            adversarial = generator_loss("hinge", self.discriminator(fake, y))
            self.discriminator.requires_grad_(True)
            weight = self._adaptive_weight(recon, adversarial)
            loss = loss + weight * adversarial
            stats.update(adversarial=adversarial, adversarial_scale=weight)
        optimizers["model"].zero_grad(set_to_none=True)
        loss.backward()
        optimizers["model"].step()
        self.step += 1
        return {"loss": loss.detach(), **{k: v.detach() for k, v in stats.items()}}

    def _discriminator_step(self, real, fake, labels, opt) -> dict[str, torch.Tensor]:
        real_logits, fake_logits = self.discriminator(real, labels), self.discriminator(fake, labels)
        loss = discriminator_loss("hinge", real_logits, fake_logits)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"loss_d": loss.detach(), "d_real": torch.sigmoid(real_logits).mean().detach(),
                "d_fake": torch.sigmoid(fake_logits).mean().detach()}

    def _adaptive_weight(self, recon: torch.Tensor, adversarial: torch.Tensor) -> torch.Tensor:
        """adversarial_weight x |d recon / d W| / |d adversarial / d W| at the decoder's last layer W."""
        last = self.decoder[-1].weight
        (g_recon,) = torch.autograd.grad(recon, last, retain_graph=True)
        (g_adversarial,) = torch.autograd.grad(adversarial, last, retain_graph=True)
        ratio = g_recon.norm() / (g_adversarial.norm() + 1e-6)
        return (self.config.adversarial_weight * ratio).clamp(max=1e4).detach()
