"""Metrics on a classifier's view of generated images: score, class balance, conditioning.

They take the classifier's outputs (probabilities or labels), never the classifier, so
one forward pass feeds all three.
"""

from __future__ import annotations

import math

import torch

from ..errors import GenforgeError
from .base import Metric


def as_probs(p, num_classes: int | None = None) -> torch.Tensor:
    """(N, K) float64 rows on the simplex; logits are the usual mistake, so say so."""
    p = torch.as_tensor(p).detach().cpu().double()
    if p.ndim != 2 or (num_classes is not None and p.shape[1] != num_classes):
        want = f"(N, {num_classes})" if num_classes is not None else "(N, K)"
        raise GenforgeError(f"probabilities must be a {want} tensor, got shape {tuple(p.shape)}")
    if len(p) and (p.min() < 0 or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=p.dtype), atol=1e-3)):
        raise GenforgeError("probabilities must be non-negative and sum to 1 per row (softmax the logits first)")
    return p


def as_labels(x, num_classes: int | None) -> torch.Tensor:
    """Class indices from (N,) labels or (N, K) probabilities/logits (their argmax)."""
    x = torch.as_tensor(x).detach().cpu()
    if x.ndim == 2:
        if num_classes is not None and x.shape[1] != num_classes:
            raise GenforgeError(f"expected {num_classes} class scores per row, got {x.shape[1]}")
        return x.argmax(1)
    if x.ndim != 1 or x.is_floating_point() or x.is_complex():
        raise GenforgeError(f"labels must be a (N,) integer tensor or (N, K) scores, got {x.dtype} {tuple(x.shape)}")
    if len(x) and (x.min() < 0 or (num_classes is not None and x.max() >= num_classes)):
        bound = f"in [0, {num_classes})" if num_classes is not None else "non-negative"
        raise GenforgeError(f"labels must be {bound}, got {int(x.min())}..{int(x.max())}")
    return x.long()


class ClassifierScore(Metric):
    """The Inception Score on any classifier: exp(E_x KL(p(y|x) || p(y))).

    1 when every sample gets the same prediction (or predictions are uniform), K when
    confident predictions spread evenly over K classes. With `splits` > 1 the samples are
    cut, in arrival order, into that many parts scored separately; the result is their
    mean and standard deviation (ddof=0), the Inception Score convention. With one split
    classifier_score_std is 0.
    """

    def __init__(self, splits: int = 1):
        if splits < 1:
            raise GenforgeError(f"splits must be at least 1, got {splits}")
        self.splits = splits
        super().__init__()

    def reset(self) -> None:
        self._probs: list[torch.Tensor] = []

    def update(self, probs) -> None:
        k = self._probs[0].shape[1] if self._probs else None
        self._probs.append(as_probs(probs, k))

    def compute(self) -> dict[str, float]:
        n = sum(len(p) for p in self._probs)
        if n < self.splits:
            raise GenforgeError(f"classifier score with {self.splits} splits needs {self.splits}+ samples, got {n}")
        probs = torch.cat(self._probs)
        scores = []
        for part in probs.tensor_split(self.splits):
            marginal = part.mean(0, keepdim=True)
            # xlogy: 0 log 0 = 0, so one-hot predictions are exact.
            kl = (torch.special.xlogy(part, part) - torch.special.xlogy(part, marginal)).sum(1)
            scores.append(math.exp(kl.mean()))
        scores = torch.tensor(scores, dtype=torch.float64)
        return {"classifier_score": float(scores.mean()), "classifier_score_std": float(scores.std(unbiased=False))}


class ClassHistogram(Metric):
    """How the predicted classes of generated samples are spread (mode collapse shows here).

    `update()` takes labels (N,) or class scores (N, K) (their argmax is the label).
    compute() -> {"class_histogram": fractions per class, "classes_covered", "class_kl"}:
    - a class is covered when it gets at least one sample and at least `min_share` (default
      10%) of its expected share, the expected shares being `real_distribution` (uniform if
      not given): with 10 balanced classes, a class needs >= 1% of the samples;
    - class_kl is KL(predicted histogram || expected shares), both smoothed by `eps` so a
      class missing on either side gives a large but finite value.
    """

    def __init__(self, num_classes: int, real_distribution=None, min_share: float = 0.1, eps: float = 1e-6):
        if real_distribution is None:
            real_distribution = torch.full((num_classes,), 1.0 / num_classes, dtype=torch.float64)
        q = torch.as_tensor(real_distribution, dtype=torch.float64).flatten()
        if len(q) != num_classes or q.min() < 0 or q.sum() <= 0:
            raise GenforgeError(f"real_distribution must be {num_classes} non-negative weights")
        self.num_classes, self.expected = num_classes, q / q.sum()
        self.min_share, self.eps = min_share, eps
        super().__init__()

    def reset(self) -> None:
        self._counts = torch.zeros(self.num_classes, dtype=torch.float64)

    def update(self, labels_or_probs) -> None:
        labels = as_labels(labels_or_probs, self.num_classes)
        self._counts += torch.bincount(labels, minlength=self.num_classes).double()

    def compute(self) -> dict:
        n = self._counts.sum()
        if n == 0:
            raise GenforgeError("class histogram of no samples")
        hist = self._counts / n
        # The 1e-9 slack keeps a class at exactly the threshold (1 of 100 samples) covered
        # despite 0.1 * 0.1 rounding to just above 0.01.
        covered = (self._counts > 0) & (hist >= self.min_share * self.expected * (1 - 1e-9))
        p = (hist + self.eps) / (1 + self.num_classes * self.eps)
        q = (self.expected + self.eps) / (1 + self.num_classes * self.eps)
        kl = (p * (p / q).log()).sum()
        return {"class_histogram": hist.tolist(), "classes_covered": int(covered.sum()), "class_kl": float(kl)}


class ConditionalAccuracy(Metric):
    """How often a conditional generator's samples are classified as the class asked for.

    `update(probs_or_labels, requested_labels)`; compute() -> {"conditional_accuracy"}.
    `num_classes`, when given, checks that labels and scores fit it.
    """

    def __init__(self, num_classes: int | None = None):
        self.num_classes = num_classes
        super().__init__()

    def reset(self) -> None:
        self._correct, self._total = 0, 0

    def update(self, probs_or_labels, requested_labels) -> None:
        predicted = as_labels(probs_or_labels, self.num_classes)
        requested = as_labels(requested_labels, self.num_classes)
        if predicted.shape != requested.shape:
            raise GenforgeError(f"{len(predicted)} predictions but {len(requested)} requested labels")
        self._correct += int((predicted == requested).sum())
        self._total += len(requested)

    def compute(self) -> dict[str, float]:
        if self._total == 0:
            raise GenforgeError("conditional accuracy of no samples")
        return {"conditional_accuracy": self._correct / self._total}
