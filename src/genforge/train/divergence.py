"""Noticing that a run has gone wrong, from the losses the loop logs anyway.

Three signs, checked once per log interval:
- a loss is NaN or infinite;
- a loss exploded: its size jumped far above its recent typical size;
- a GAN's discriminator wins completely (it calls every real image real and every fake
  fake for many intervals in a row): the generator then gets no useful gradient, and
  such runs rarely recover by themselves.
"""

from __future__ import annotations

import math
import statistics
from collections import deque


class DivergenceMonitor:
    def __init__(self, explode_factor: float = 100.0, history: int = 20,
                 d_confident: float = 0.99, d_patience: int = 8):
        self.explode_factor = explode_factor
        self.d_confident = d_confident
        self.d_patience = d_patience
        self.recent: dict[str, deque] = {}
        self.history = history
        self.d_wins_in_a_row = 0

    def reset(self) -> None:
        """Forgets the past: after a rollback the restored run starts a new history."""
        self.recent.clear()
        self.d_wins_in_a_row = 0

    def check(self, losses: dict[str, float]) -> str | None:
        """The reason the run diverged, or None while it looks healthy."""
        for key, value in losses.items():
            if not math.isfinite(value):
                return f"{key} became {value}"
        for key, value in losses.items():
            past = self.recent.setdefault(key, deque(maxlen=self.history))
            # Needs a few values before judging; +1 keeps losses that hover near 0 from
            # counting as explosions when they move to 0.5.
            if len(past) >= 5 and abs(value) > self.explode_factor * (statistics.median(past) + 1.0):
                return f"{key} exploded to {value:.3g} (typical {statistics.median(past):.3g})"
            past.append(abs(value))
        if "d_real" in losses and "d_fake" in losses:
            wins = losses["d_real"] > self.d_confident and losses["d_fake"] < 1 - self.d_confident
            self.d_wins_in_a_row = self.d_wins_in_a_row + 1 if wins else 0
            if self.d_wins_in_a_row >= self.d_patience:
                return (f"the discriminator wins completely (d_real {losses['d_real']:.3f}, "
                        f"d_fake {losses['d_fake']:.3f} for {self.d_wins_in_a_row} log intervals)")
        return None
