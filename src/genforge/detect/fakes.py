"""Fakes with known answers, made from genforge run directories.

Two kinds per model: images it samples (wholly generated: the mask is all ones), and real
images with a region pasted from the model's output (partially edited: the mask is the
region). An autoencoder's donor is its reconstruction of the same real image, so the pasted
region continues the picture as an inpainting would; a GAN's donor is one of its samples.
Half the pastes are feathered, so the seam alone does not give them away.

A third kind needs no model (`self_blends`): a real image with a region pasted from a blurred,
resampled, noisier or sharpened (a colour image also: recoloured) copy of itself, the self-blended images of Shiohara & Yamasaki
(CVPR 2022). They teach what any local edit has in common, a region whose local statistics
differ from the rest of the picture, rather than one generator's fingerprint, which is what a
detector needs on generators it never saw.

A paste's mask marks the pixels the paste changed by more than one grey level ("changed", the
default), as `bench/make_edits.py` marks the inpaintings a detector is tested on, or the whole
region asked for ("region"). Inside a region much of the picture (an MNIST background) can come
back exactly as it was, and no detector can see an edit that left a pixel alone: taught the
region, the map must guess where a box ended over untouched pixels; taught what changed, it
learns what an edit looks like (BENCHMARKS.md: pixel AUC on `genforge edit` inpaintings
0.85 -> 0.92 on the detection benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..api import Model, load
from ..data import ImageSet
from ..errors import GenforgeError
from .augment import add_noise, gaussian_blur, quantise, resample


@dataclass
class FakeSet:
    """Float images (N, C, H, W) in [0, 1], masks (N, 1, H, W) of what was generated, and the
    source of each image as an index into `names` ("vae:sample", "vae:paste", ...)."""

    images: torch.Tensor
    masks: torch.Tensor
    source: torch.Tensor
    names: list[str]

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index) -> "FakeSet":
        return FakeSet(self.images[index], self.masks[index], self.source[index], self.names)

    def of(self, name: str) -> "FakeSet":
        return self.subset(self.source == self.names.index(name))


def concat(sets: list[FakeSet]) -> FakeSet:
    names = [name for s in sets for name in s.names]
    offsets = torch.tensor([0] + [len(s.names) for s in sets]).cumsum(0)
    return FakeSet(torch.cat([s.images for s in sets]), torch.cat([s.masks for s in sets]),
                   torch.cat([s.source + offsets[i] for i, s in enumerate(sets)]), names)


def random_masks(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """n masks (N, 1, size, size) of 0/1. Three of four are boxes or ellipses with sides of 1/5 to
    1/2 of the image, centred in its middle half (where the subject of a picture usually is); one
    in four is a top, bottom, left or right half, the large region an image completion fills."""
    centre = size / 4 + torch.rand(n, 2, generator=generator) * size / 2
    half_side = size * (0.1 + 0.15 * torch.rand(n, 2, generator=generator))
    grid = torch.arange(size, dtype=torch.float32) + 0.5
    dy = (grid.view(1, -1, 1) - centre[:, 0].view(-1, 1, 1)) / half_side[:, 0].view(-1, 1, 1)
    dx = (grid.view(1, 1, -1) - centre[:, 1].view(-1, 1, 1)) / half_side[:, 1].view(-1, 1, 1)
    box = (dy.abs() <= 1) & (dx.abs() <= 1)
    ellipse = dy ** 2 + dx ** 2 <= 1
    shape = torch.randint(4, (n,), generator=generator).view(-1, 1, 1)  # 0, 1 box; 2 ellipse; 3 half
    side = torch.randint(4, (n,), generator=generator).view(-1, 1, 1)
    rows, cols = grid.view(1, -1, 1) < size / 2, grid.view(1, 1, -1) < size / 2
    half = torch.where(side == 0, rows, torch.where(side == 1, ~rows, torch.where(side == 2, cols, ~cols)))
    masks = torch.where(shape <= 1, box, torch.where(shape == 2, ellipse, half.expand(n, size, size)))
    return masks.unsqueeze(1).float()


def paste(real: torch.Tensor, donor: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Real images with the masked region taken from `donor`; half of them with a soft seam."""
    alpha = masks.clone()
    soft = torch.rand(len(masks), generator=generator) < 0.5
    if soft.any():
        alpha[soft] = torch.maximum(masks[soft], gaussian_blur(masks[soft], 1.0))
    return quantise(alpha * donor + (1 - alpha) * real)


EDIT_TRUTHS = ("changed", "region")


def changed_pixels(edited: torch.Tensor, original: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) 0/1: where an 8-bit image differs from its original by more than one grey level
    in any channel (half a level of slack keeps float error from deciding)."""
    difference = (quantise(edited) - quantise(original)).abs().amax(dim=1, keepdim=True)
    return (difference > 1.5 / 255).float()


def _pasted(originals: torch.Tensor, donor: torch.Tensor, generator: torch.Generator,
            truth: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Random regions of `donor` pasted into `originals`, and their masks (`truth` defines them)."""
    masks = random_masks(len(originals), originals.shape[-1], generator)
    edited = paste(originals, donor, masks, generator)
    changed = changed_pixels(edited, originals)
    # A box over blank background can come back exactly as it was: that image is the real one, no edit.
    kept = changed.flatten(1).any(1)
    return edited[kept], (changed if truth == "changed" else masks)[kept]


def _donor(model: Model, real: torch.Tensor, labels: torch.Tensor | None, seed: int) -> torch.Tensor:
    if model.module.is_autoencoder:
        labels = labels if model.module.is_conditional else None
        return model.decode(model.encode(real, labels), labels).cpu()
    return model.sample(len(real), seed=seed)


def model_fakes(run_dir: str | Path, real: ImageSet, n: int, seed: int = 0, truth: str = "changed") -> FakeSet:
    """n samples of the run's model ("NAME:sample") and up to n pastes into real images ("NAME:paste"),
    whose masks mark the pasted region or the pixels it changed (`truth`, one of EDIT_TRUTHS); a
    paste that changed no pixel by more than one grey level is left out."""
    if truth not in EDIT_TRUTHS:
        raise GenforgeError(f"the edit truth is one of {', '.join(EDIT_TRUTHS)}, not {truth!r}")
    model = load(run_dir)
    if model.image_shape != real.shape:
        raise GenforgeError(f"{run_dir} makes {model.image_shape} images but the real images are {real.shape}; "
                            "train the detector on the data the models were trained on")
    name = Path(run_dir).name
    generator = torch.Generator().manual_seed(seed)
    samples = quantise(model.sample(n, seed=seed))
    index = torch.randint(len(real), (n,), generator=generator)
    originals = real.images[index].float() / 255
    labels = real.labels[index] if real.labels is not None else None
    if model.module.is_conditional and model.module.is_autoencoder and labels is None:
        raise GenforgeError(f"{run_dir} is a conditional autoencoder; its pastes need labelled real images")
    edited, masks = _pasted(originals, _donor(model, originals, labels, seed + 1), generator, truth)
    return FakeSet(torch.cat([samples, edited]), torch.cat([torch.ones_like(samples[:, :1]), masks]),
                   torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(len(edited), dtype=torch.long)]),
                   [f"{name}:sample", f"{name}:paste"])


def recoloured(x: torch.Tensor, saturation: float, tint: torch.Tensor) -> torch.Tensor:
    """Colour images with their saturation scaled (0: grey, 1: as they were, above 1: more vivid)
    and a colour cast `tint` (3,) added: what a colour edit or a decoder's off colours do."""
    luma = (x * torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return (luma + saturation * (x - luma) + tint.view(1, 3, 1, 1)).clamp(0, 1)


def _restyled(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x with one of four local-statistics changes, drawn per image, at a strength drawn per kind;
    on colour images one of five, the fifth a change of saturation and a colour cast (`recoloured`).
    A grey image never draws the fifth, so grey self-blends stay what they were."""
    out = x.clone()
    colour = x.shape[1] == 3
    kind = torch.randint(5 if colour else 4, (len(x),), generator=generator)
    strength = torch.rand(4, generator=generator).tolist()
    changes = [lambda b: gaussian_blur(b, 0.5 + strength[0]),
               lambda b: resample(b, 1.5 + 1.5 * strength[1]),
               lambda b: add_noise(b, 0.02 + 0.06 * strength[2], generator),
               lambda b: (b + (0.5 + strength[3]) * (b - gaussian_blur(b, 1.0))).clamp(0, 1)]  # unsharp mask
    if colour:
        saturation = 0.4 + 1.2 * torch.rand((), generator=generator).item()  # 0.4 (washed out) to 1.6
        tint = 0.08 * (2 * torch.rand(3, generator=generator) - 1)  # up to 20 levels per channel
        changes.append(lambda b: recoloured(b, saturation, tint))
    for k, change in enumerate(changes):
        if (kind == k).any():
            out[kind == k] = change(x[kind == k])
    return out


SELF_BLEND = "self-blend:paste"


def self_blends(real: ImageSet, n: int, seed: int = 0, truth: str = "changed") -> FakeSet:
    """Up to n real images with a random region pasted from a restyled copy of themselves
    ("self-blend:paste"); masked like model pastes, and left out where no pixel changed."""
    generator = torch.Generator().manual_seed(seed)
    originals = real.images[torch.randint(len(real), (n,), generator=generator)].float() / 255
    edited, masks = _pasted(originals, _restyled(originals, generator), generator, truth)
    return FakeSet(edited, masks, torch.zeros(len(edited), dtype=torch.long), [SELF_BLEND])


def make_fakes(run_dirs: list[str | Path], real: ImageSet, n: int, seed: int = 0, truth: str = "changed",
               self_blend: bool = False) -> FakeSet:
    """The samples and pastes of every run (`model_fakes`), and n self-blended real images if asked."""
    names = [Path(r).name for r in run_dirs]
    if len(set(names)) != len(names):
        raise GenforgeError(f"fake sources are named after their run directories, and these repeat: {names}; "
                            "give the run directories distinct names")
    sets = [model_fakes(r, real, n, seed + 1000 * i, truth) for i, r in enumerate(run_dirs)]
    if self_blend:
        sets.append(self_blends(real, n, seed + 1000 * len(run_dirs), truth))
    return concat(sets)
