"""The feature networks behind the metrics: one small classifier per data set, shipped with
the package.

FID and its relatives need a network that knows what the images are. The Inception network
of the usual convention needs weights that cannot be downloaded everywhere and knows nothing
of 28x28 digits; a classifier trained on the data set itself is small (a few MB), runs fast on
a CPU, and its penultimate layer separates exactly what matters here. Its card (JSON beside
the weights) says how it was trained and how accurate it is.

The same network serves grayscale 28x28 and colour 64x64 data: `widths` gives one stage
(two 3x3 convs and a 2x2 max-pool) per entry, so a 64x64 input takes four stages where a
28x28 one takes two, and the flattened map before the feature layer stays small. A data set
with a second label per image (emoji's vendor, `ImageSet.styles`) gets a second head on the
same features (`num_styles`); the first head and the features are unchanged by it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import GenforgeError

WEIGHTS_DIR = Path(__file__).parent / "weights"


@dataclass
class FeatureNetConfig:
    in_channels: int = 1
    image_size: int = 28
    width: int = 16
    feature_dim: int = 128
    num_classes: int = 10
    widths: list[int] | None = None  # channels of each stage; None: [width, 2 * width] (the MNIST nets)
    num_styles: int = 0  # a second head predicting the style label (emoji: the vendor); 0: none

    @property
    def stage_widths(self) -> list[int]:
        return list(self.widths) if self.widths else [self.width, 2 * self.width]


def _conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


class FeatureNet(nn.Module):
    """VGG-style CNN: conv pairs with pooling, a feature layer, a linear class head (and, where
    the data set has styles, a linear style head beside it)."""

    def __init__(self, config: FeatureNetConfig):
        super().__init__()
        self.config = config
        layers, c_in = [], config.in_channels
        for w in config.stage_widths:
            layers += [*_conv(c_in, w), *_conv(w, w), nn.MaxPool2d(2)]
            c_in = w
        side = config.image_size // 2 ** len(config.stage_widths)
        self.body = nn.Sequential(
            *layers,
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(c_in * side ** 2, config.feature_dim),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(config.feature_dim, config.num_classes))
        if config.num_styles:
            self.style_head = nn.Sequential(nn.Dropout(0.3), nn.Linear(config.feature_dim, config.num_styles))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits for images (N, C, H, W) in [0, 1]."""
        return self.head(self.body(self._normalise(x)))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate-layer features (the FID features) and class logits."""
        f = self.body(self._normalise(x))
        return f, self.head(f)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Features, class logits and style logits (None for a network without a style head)."""
        f = self.body(self._normalise(x))
        return f, self.head(f), self.style_head(f) if self.config.num_styles else None

    @staticmethod
    def _normalise(x: torch.Tensor) -> torch.Tensor:
        return (x - 0.5) / 0.5


def save_feature_net(net: FeatureNet, directory: Path, name: str, card: dict) -> Path:
    from safetensors.torch import save_file
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(directory / f"{name}.safetensors"))
    config = {k: v for k, v in asdict(net.config).items() if v is not None}  # the MNIST cards stay as they were
    card = {"config": config, **card}
    (directory / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return directory / f"{name}.safetensors"


def shipped_feature_nets() -> list[str]:
    return sorted(p.stem for p in WEIGHTS_DIR.glob("*.safetensors"))


def reads_smaller_images(dataset: str) -> bool:
    """Whether the shipped network for `dataset` also reads images smaller than its own size
    (upsampled): the colour networks (a `widths` entry on their card) do, the 28x28 ones do not."""
    try:
        return bool(json.loads((WEIGHTS_DIR / f"{dataset}.json").read_text())["config"].get("widths"))
    except (OSError, ValueError, KeyError):
        return False


def load_feature_net(dataset: str, directory: Path | None = None) -> tuple[FeatureNet, dict]:
    """The feature network for `dataset` in eval mode, and its card."""
    from safetensors.torch import load_file
    directory = Path(directory) if directory else WEIGHTS_DIR
    weights, card_path = directory / f"{dataset}.safetensors", directory / f"{dataset}.json"
    if not weights.exists() or not card_path.exists():
        have = ", ".join(shipped_feature_nets()) or "none"
        raise GenforgeError(f"no feature network for {dataset!r} (shipped: {have}); train one with "
                            f"`genforge eval train-features --dataset {dataset}`")
    card = json.loads(card_path.read_text())
    net = FeatureNet(FeatureNetConfig(**card["config"]))
    net.load_state_dict(load_file(str(weights)))
    return net.eval(), card
