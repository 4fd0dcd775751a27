"""A rectified-flow prior (Liu et al. 2023; Lipman et al. 2023, flow matching): a small MLP
velocity field that carries N(0, I) noise onto the codes along nearly straight paths.

Chosen over RealNVP because training is plain regression - no Jacobian determinants, no
coupling masks, no invertibility to keep - so a few thousand steps of a small MLP fit the
clumpy, many-moded code distribution of an autoencoder in seconds on a CPU, and sampling is a
fixed number of Heun steps from seeded noise. The price is that its density (an ODE with a
trace integral) is not cheap, so this prior has no `log_prob`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config_check import SEED, Number, Whole
from .base import LatentPrior


class FlowPrior(LatentPrior):
    """A rectified-flow prior: an MLP velocity field (`hidden` wide, trained `train_steps`
    steps) that carries seeded N(0, I) noise onto the codes in `sample_steps` Heun steps.
    It has no `log_prob`."""

    kind = "flow"
    RULES = {"hidden": Whole(min=1), "train_steps": Whole(min=1), "batch_size": Whole(min=1), "lr": Number(gt=0),
             "sample_steps": Whole(min=1), "seed": SEED}

    def __init__(self, dim: int, num_classes: int = 0, hidden: int = 128, train_steps: int = 2000,
                 batch_size: int = 256, lr: float = 5e-3, sample_steps: int = 25, seed: int = 0):
        super().__init__(dim, num_classes)
        o = self.check_options(hidden=hidden, train_steps=train_steps, batch_size=batch_size, lr=lr,
                               sample_steps=sample_steps, seed=seed)
        hidden, train_steps, batch_size, lr, sample_steps, seed = (
            o["hidden"], o["train_steps"], o["batch_size"], o["lr"], o["sample_steps"], o["seed"])
        self.hidden, self.train_steps, self.batch_size, self.lr = hidden, train_steps, batch_size, lr
        self.sample_steps, self.seed = sample_steps, seed
        with torch.random.fork_rng():  # seeded initialisation that leaves the caller's RNG alone
            torch.manual_seed(seed)
            self.velocity = nn.Sequential(
                nn.Linear(dim + 1 + num_classes, hidden), nn.SiLU(),
                nn.Linear(hidden, hidden), nn.SiLU(),
                nn.Linear(hidden, hidden), nn.SiLU(),
                nn.Linear(hidden, dim))
        # The codes are standardised first, so one learning rate suits any encoder's scale.
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def options(self) -> dict:
        return {"hidden": self.hidden, "train_steps": self.train_steps, "batch_size": self.batch_size,
                "lr": self.lr, "sample_steps": self.sample_steps, "seed": self.seed}

    def field(self, x: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        inputs = [x, t.expand(len(x), 1)]
        if self.num_classes:
            inputs.append(F.one_hot(labels, self.num_classes).float())
        return self.velocity(torch.cat(inputs, dim=1))

    def fit(self, z, labels=None):
        self.check_input(z, labels)
        z = z.detach().float().cpu().clone()  # a plain tensor, even if encoded under inference_mode
        self.mean.copy_(z.mean(0))
        self.std.copy_(z.std(0).clamp(min=1e-6))
        data = (z - self.mean) / self.std
        generator = torch.Generator().manual_seed(self.seed)
        opt = torch.optim.Adam(self.velocity.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1 - step / self.train_steps)
        with torch.enable_grad():
            for _ in range(self.train_steps):
                idx = torch.randint(len(data), (self.batch_size,), generator=generator)
                target = data[idx]
                noise = torch.randn(target.shape, generator=generator)
                t = torch.rand(len(target), 1, generator=generator)
                # The straight path noise -> code has the constant velocity (code - noise).
                moving = (1 - t) * noise + t * target
                loss = F.mse_loss(self.field(moving, t, labels[idx] if labels is not None else None),
                                  target - noise)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                schedule.step()
        return self

    @torch.no_grad()
    def sample(self, n, generator=None, labels=None, temperature=1.0):
        self.check_labels(labels, n)
        x = temperature * torch.randn(n, self.dim, generator=generator)  # wider noise, as Glow's temperature
        dt = 1.0 / self.sample_steps
        for i in range(self.sample_steps):  # Heun's method: second order for a handful more calls
            t = torch.tensor([[i * dt]])
            v = self.field(x, t, labels)
            guess = x + dt * v
            x = x + dt / 2 * (v + self.field(guess, t + dt, labels))
        return x * self.std + self.mean
