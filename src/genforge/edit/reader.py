"""The data set's feature network as the judge of a run's edits, whatever the run's size and labels.

Edits judge images with the data set's shipped classifier (what class it reads before and after,
and its features for the latent search's feature loss). A run's images need not be the network's
own: a colour network (emoji's, 64x64) also reads a 32x32 run's images, upsampled (bilinear,
antialiased, as the metrics do: metrics/extractors.py); and a run conditioned on the style
(data/labelling.py) has the vendor for its label, which the network's style head reads. The
Reader puts both behind the FeatureNet interface the edits use (`forward` gives logits over the
run's labels, `features_and_logits`, `config.num_classes`), differentiable where the latent
search needs gradients through it.

For "class+style" the logits are log p(class) + log p(style) for each pair, in the pair order
of the labels (class * num_styles + style).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ..metrics.feature_net import FeatureNet


def can_read(net: FeatureNet, image_shape: tuple[int, int, int], labelling: str = "class") -> bool:
    """Whether `net` can judge a run's images of `image_shape` (C, H, W) under `labelling`."""
    c = net.config
    channels, size, _ = image_shape
    if channels != c.in_channels:
        return False
    if size != c.image_size and not (c.widths and 8 <= size < c.image_size):
        return False
    return labelling == "class" or bool(c.num_styles)


class Reader(nn.Module):
    """A feature network seen through a run's image size and labelling."""

    def __init__(self, net: FeatureNet, image_size: int, labelling: str = "class"):
        super().__init__()
        self.net = net
        self.labelling = labelling
        k, s = net.config.num_classes, net.config.num_styles
        labels = {"class": k, "style": s, "class+style": k * s}[labelling]
        self.config = dataclasses.replace(net.config, image_size=image_size, num_classes=labels)

    def _resize(self, x: torch.Tensor) -> torch.Tensor:
        size = self.net.config.image_size
        if x.shape[-1] == size:
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Features, class logits and style logits (None without a style head) of images in [0, 1]."""
        return self.net.heads(self._resize(x))

    def _labels(self, class_logits: torch.Tensor, style_logits: torch.Tensor | None) -> torch.Tensor:
        if self.labelling == "class":
            return class_logits
        if self.labelling == "style":
            return style_logits
        pairs = F.log_softmax(class_logits, 1)[:, :, None] + F.log_softmax(style_logits, 1)[:, None, :]
        return pairs.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K) over the run's labels."""
        _, class_logits, style_logits = self.heads(x)
        return self._labels(class_logits, style_logits)

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f, class_logits, style_logits = self.heads(x)
        return f, self._labels(class_logits, style_logits)

    def category_and_style(self, x: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The class (N,) and style (N,; None without a style head) the network reads, whatever the
        run's labelling: what a vendor swap is judged by."""
        classes, styles = [], []
        with torch.inference_mode():
            for i in range(0, len(x), batch):
                _, c, s = self.heads(x[i:i + batch])
                classes.append(c.argmax(1))
                if s is not None:
                    styles.append(s.argmax(1))
        return torch.cat(classes), torch.cat(styles) if styles else None
