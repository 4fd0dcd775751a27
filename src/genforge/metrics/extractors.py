"""Feature extractors: what turns images into the features and class probabilities that
the metrics compare. Two kinds, one interface (`embed`, `digest`, `describe`):

- `classifier` (default): the data set's own feature network shipped with genforge;
- `inception`: the Inception network of the common FID convention (2015-12-05 weights,
  grayscale tiled to three channels, resized to 299x299), through torch-fidelity, for numbers
  comparable with published ones. genforge neither ships nor fetches those weights itself;
  where torch-fidelity or its weights cannot be had, one line says so.

A colour feature network (emoji's, 64x64) also reads smaller images of its data set, such
as the 32x32 samples of a model trained at half size: they are upsampled to its size
(bilinear), and evaluate.py brings the real images to the samples' size first (the same
antialiased resize training used), so both sides reach the network along the same path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import GenforgeError
from .feature_net import load_feature_net

EXTRACTORS = ("classifier", "inception")


@dataclass
class Embedding:
    features: torch.Tensor  # (N, D)
    probs: torch.Tensor | None  # (N, K) class probabilities, where the network has classes
    style_probs: torch.Tensor | None = None  # (N, S) style (vendor) probabilities, where it has a style head


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(255) if x.dtype == torch.uint8 else x.float()


class ClassifierExtractor:
    """The data set's shipped classifier: penultimate-layer features, softmax of its head."""

    def __init__(self, dataset: str):
        self.net, self.card = load_feature_net(dataset)
        self.channels, self.size = self.net.config.in_channels, self.net.config.image_size

    def describe(self) -> dict:
        out = {"network": "classifier", "dataset": self.card["dataset"], "test_accuracy": self.card["test_accuracy"]}
        if "test_style_accuracy" in self.card:
            out["test_style_accuracy"] = self.card["test_style_accuracy"]
        return out

    def accepts(self, images: torch.Tensor) -> bool:
        """Images of the network's shape, or (colour networks only) smaller square ones it upsamples."""
        if images.ndim != 4 or images.shape[1] != self.channels or images.shape[2] != images.shape[3]:
            return False
        size = images.shape[-1]
        return size == self.size or (self.net.config.widths is not None and 8 <= size < self.size)

    def digest(self) -> str:
        h = hashlib.blake2b(digest_size=12)
        for k, v in sorted(self.net.state_dict().items()):
            h.update(k.encode() + v.numpy().tobytes())
        return h.hexdigest()

    @torch.inference_mode()
    def embed(self, images: torch.Tensor, batch_size: int = 500) -> Embedding:
        if not self.accepts(images):
            raise GenforgeError(f"images of shape {tuple(images.shape[1:])} cannot be judged by a feature "
                                f"network for {self.channels}x{self.size}x{self.size} images")
        feats, probs, styles = [], [], []
        for i in range(0, len(images), batch_size):
            x = _as_float(images[i:i + batch_size])
            if x.shape[-1] != self.size:
                x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)
            f, logits, style_logits = self.net.heads(x)
            feats.append(f)
            probs.append(F.softmax(logits.double(), 1).float())
            if style_logits is not None:
                styles.append(F.softmax(style_logits.double(), 1).float())
        return Embedding(torch.cat(feats), torch.cat(probs), torch.cat(styles) if styles else None)


class InceptionExtractor:
    """Inception-v3 pool features (2048-d) as in the FID paper's TensorFlow code, via torch-fidelity."""

    def __init__(self):
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except ImportError as e:
            raise GenforgeError(f"the Inception network needs torch-fidelity (and torchvision): "
                                f"pip install torch-fidelity ({e})") from None
        try:
            self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048", "logits_unbiased"]).eval()
        except Exception as e:  # a failed download shows up as URLError, HTTPError, OSError, RuntimeError ...
            raise GenforgeError(
                f"the Inception weights (pt_inception-2015-12-05) could not be loaded ({type(e).__name__}: {e}); "
                f"with no network, copy them into {torch.hub.get_dir()}/checkpoints/ and retry") from None

    def describe(self) -> dict:
        return {"network": "inception", "weights": "pt_inception-2015-12-05 (torch-fidelity inception-v3-compat)"}

    def digest(self) -> str:
        return "inception-v3-compat-2015-12-05"

    @torch.inference_mode()
    def embed(self, images: torch.Tensor, batch_size: int = 100) -> Embedding:
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise GenforgeError(f"images must be (N, 1 or 3, H, W), got {tuple(images.shape)}")
        feats, probs = [], []
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size]
            x = x if x.dtype == torch.uint8 else x.clamp(0, 1).mul(255).round().to(torch.uint8)
            if x.shape[1] == 1:
                x = x.repeat(1, 3, 1, 1)  # the convention: grayscale tiled to RGB
            f, logits = self.net(x)  # resizes to 299x299 inside, as the reference code does
            feats.append(f.float())
            probs.append(F.softmax(logits.double(), 1).float())
        return Embedding(torch.cat(feats), torch.cat(probs))


def get_extractor(name: str, dataset: str):
    if name == "classifier":
        return ClassifierExtractor(dataset)
    if name == "inception":
        return InceptionExtractor()
    raise GenforgeError(f"unknown feature network {name!r}; choose one of: {', '.join(EXTRACTORS)}")
