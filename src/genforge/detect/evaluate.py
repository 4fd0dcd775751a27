"""The numbers the forensics literature reports: AUC and average precision of real against
each fake source, the same under perturbations, and pixel-level AUC / F1 of edit maps."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from .augment import PERTURBATIONS, quantise
from .detector import Detector
from .fakes import FakeSet

Scorer = Callable[[torch.Tensor], torch.Tensor]  # images -> "fakeness" scores (N,)


def separation(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> dict[str, float]:
    """AUC and average precision with fakes as the positive class."""
    y = np.r_[np.zeros(len(real_scores)), np.ones(len(fake_scores))]
    s = np.r_[real_scores.double().numpy(), fake_scores.double().numpy()]
    return {"auc": float(roc_auc_score(y, s)), "ap": float(average_precision_score(y, s))}


def per_source(score: Scorer, real: torch.Tensor, fakes: FakeSet) -> dict[str, dict[str, float]]:
    real_scores = score(real)
    fake_scores = score(fakes.images)
    return {name: separation(real_scores, fake_scores[fakes.source == i]) for i, name in enumerate(fakes.names)
            if (fakes.source == i).any()}


def under_perturbations(score: Scorer, real: torch.Tensor, fakes: FakeSet) -> dict[str, dict[str, dict]]:
    """{perturbation: {source: {auc, ap}}}, "none" first."""
    result = {"none": per_source(score, real, fakes)}
    for name, perturb in PERTURBATIONS.items():
        result[name] = per_source(lambda x: score(quantise(perturb(x))), real, fakes)
    return result


def localisation(maps: torch.Tensor, masks: torch.Tensor, threshold: float = 0.5) -> dict[str, float]:
    """Pixel-level AUC and F1 (at `threshold`) of edit maps against the true edit masks."""
    y = masks.flatten().numpy() > 0.5
    s = maps.flatten().double().numpy()
    return {"pixel_auc": float(roc_auc_score(y, s)), "pixel_f1": float(f1_score(y, s >= threshold))}


def detector_scorer(detector: Detector) -> Scorer:
    return lambda x: detector.predict(x)[0]


def evaluate_detector(detector: Detector, real: torch.Tensor, fakes: FakeSet,
                      perturb: bool = True) -> dict:
    """Detection per source (with perturbations unless perturb=False) and localisation on pastes."""
    score = detector_scorer(detector)
    result = {"detection": under_perturbations(score, real, fakes) if perturb else
              {"none": per_source(score, real, fakes)}}
    pasted = torch.tensor([name.endswith(":paste") for name in fakes.names])[fakes.source]
    if pasted.any():
        maps = detector.predict(fakes.images[pasted])[1]
        result["localisation"] = localisation(maps, fakes.masks[pasted])
    return result
