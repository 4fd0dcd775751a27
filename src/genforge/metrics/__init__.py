"""Sample-quality metrics on precomputed features, class probabilities or images.

Each metric is an object: `update()` as batches arrive, `compute()` at the end,
`reset()` to start over. None of them runs a network; see base.py for why.
"""

from .base import Metric
from .classifier_score import ClassHistogram, ClassifierScore, ConditionalAccuracy
from .density_coverage import DensityCoverage
from .fid import FID, feature_stats, frechet_distance
from .kid import KID
from .memorisation import TrainingDistance
from .precision_recall import PrecisionRecall
from .reconstruction import ReconstructionError, ssim

__all__ = [
    "FID", "KID", "ClassHistogram", "ClassifierScore", "ConditionalAccuracy", "DensityCoverage", "Metric",
    "PrecisionRecall", "ReconstructionError", "TrainingDistance", "feature_stats", "frechet_distance", "ssim",
]
