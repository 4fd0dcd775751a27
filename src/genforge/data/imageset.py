"""The one in-memory form every data source is turned into."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class ImageSet:
    """Images as a uint8 tensor (N, C, H, W) in 0..255, with optional integer labels.

    The whole set lives in memory (all of MNIST is 47 MB as uint8), so batches are
    index operations on one tensor: no per-image Python work while training.

    styles/style_names: an optional second label per image, such as the vendor whose
    drawing an emoji is (data/emoji.py); None for data sets that have one label only.
    """

    images: torch.Tensor
    labels: torch.Tensor | None = None
    classes: list[str] | None = None
    name: str = ""
    styles: torch.Tensor | None = None
    style_names: list[str] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise ValueError(f"{len(self.labels)} labels for {len(self.images)} images")
        if self.styles is not None and len(self.styles) != len(self.images):
            raise ValueError(f"{len(self.styles)} styles for {len(self.images)} images")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        c, h, w = self.images.shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        if self.classes is not None:
            return len(self.classes)
        return int(self.labels.max()) + 1 if self.labels is not None and len(self.labels) else 0

    def subset(self, index) -> "ImageSet":
        labels = self.labels[index] if self.labels is not None else None
        styles = self.styles[index] if self.styles is not None else None
        return ImageSet(self.images[index], labels, self.classes, self.name, styles, self.style_names)
