"""Moving a measured property of images by an asked amount: `--to hue=+0.2`, `--to area=-0.3`.

The plain attribute vector (attribute.py: the mean code of the images highest in a property
minus that of the lowest) says which way a property grows, but not how far one unit of it
is, and it drags along whatever else differs between the two groups. Here the step is measured
and the rest held:

1. Slopes. How every property moves per unit move of the code, two ways: the derivatives of the
   decoder and the measures at the image's own code (local: right for each image, but blind where
   a measure is flat), and a ridge regression of the properties on the codes of a group of
   images (a training set's encoded images, or a GAN's prior draws; with the label as well for a
   conditional model, so that the label's share is not put on the code): one slope for all, which
   sees the trend past such flats. Hue, a circular quantity, takes two rows: the
   saturation-weighted mean of (cos, sin) of the hue angle (colour.py).
2. Move. For each image, the smallest code move that changes the asked property by the asked
   amount and every other property by nothing, under that linear model (InterFaceGAN's
   conditional manipulation, Shen et al. 2020, with measured properties in place of attribute
   classifiers), solved as a weighted least squares so that a code with fewer dimensions than
   properties still gets the asked change first (`PropertyModel.move`).
   A hue change is a rotation of the image's own hue vector, so the change asked differs per image.
3. Line search. A linear model is only a first answer: the decoder bends. Each move is tried
   at several multiples (SCALES), every candidate is decoded and measured, and each image keeps
   the one whose measured change is nearest the asked one, the other properties' changes
   counting a tenth as much (DRIFT_WEIGHT).

Changes are measured from the model's own drawing of the input (its reconstruction: the code
decoded unedited), so what is reported is the edit's effect, not the model's reconstruction error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import GenforgeError
from . import colour
from .attribute import ink_mass, slant

SCALES = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)  # multiples of the linear model's move tried
RIDGE = 1e-3  # relative ridge: keeps the regression stable where codes are few or collinear
DRIFT_WEIGHT = 0.1  # in the line search: a unit of the others' change costs a tenth of a unit missed
ASKED_WEIGHT = 100.0  # how much more the asked change counts than the others' (PropertyModel.move)
COLOUR_NAMES = ("area", "saturation", "brightness", "hue")
GREY_NAMES = ("thickness", "slant")
CALIBRATED = (*GREY_NAMES, *COLOUR_NAMES)  # every property an amount can be asked of


def scalar_measure(name: str, x: torch.Tensor, background=colour.WHITE) -> torch.Tensor:
    """The property `name` of images x (N,); hue as a fraction of the circle."""
    if name == "thickness":
        return ink_mass(x)
    if name == "slant":
        return slant(x)
    return getattr(colour, name)(x, background)


def change(name: str, after: torch.Tensor, before: torch.Tensor, background=colour.WHITE) -> torch.Tensor:
    """How much property `name` went up (N,) from images `before` to `after` (hue: on the circle)."""
    a, b = scalar_measure(name, after, background), scalar_measure(name, before, background)
    return colour.hue_difference(a, b) if name == "hue" else a - b


def held_names(channels: int, name: str) -> tuple[str, ...]:
    """The properties modelled together with `name` (all are held but it): the colour ones for RGB
    images, thickness and slant for grayscale."""
    if name not in CALIBRATED:
        raise GenforgeError(f"unknown attribute {name!r}; choose one of: {', '.join(CALIBRATED)}")
    if channels == 1 and name in ("hue", "saturation"):
        raise GenforgeError(f"{name} needs colour images; this model makes grayscale ones")
    names = COLOUR_NAMES if channels == 3 else GREY_NAMES
    return names if name in names else (name, *names)


def table(names: tuple[str, ...], x: torch.Tensor, background=colour.WHITE) -> torch.Tensor:
    """The regression's targets (N, P): one column per property, two (cos, sin) for hue."""
    cols = []
    for name in names:
        if name == "hue":
            cols.append(colour.hue_vector(x, background))
        else:
            cols.append(scalar_measure(name, x, background)[:, None])
    return torch.cat(cols, 1)


def columns(names: tuple[str, ...]) -> dict[str, slice]:
    out, i = {}, 0
    for name in names:
        width = 2 if name == "hue" else 1
        out[name] = slice(i, i + width)
        i += width
    return out


@dataclass
class PropertyModel:
    """How the properties `names` move per unit move of the code: `slopes` (P, D) for every code (a
    regression, `fit`), or (N, P, D), one matrix per code (the decoder's own derivatives, `local`)."""

    names: tuple[str, ...]
    slopes: torch.Tensor

    @classmethod
    def fit(cls, names: tuple[str, ...], codes: torch.Tensor, targets: torch.Tensor,
            labels: torch.Tensor | None = None, num_classes: int = 0) -> "PropertyModel":
        """Ridge regression of targets (N, P) on codes (N, D), plus an intercept per label (one
        intercept without labels)."""
        if len(codes) < 2:
            raise GenforgeError(f"fitting how properties follow the code needs at least 2 codes, got {len(codes)}")
        z = codes.double()
        mean = z.mean(0)
        if labels is None:
            offsets = torch.ones(len(z), 1, dtype=z.dtype)
        else:  # one intercept per label present (a label never drawn would leave a column of zeros)
            onehot = F.one_hot(labels.long(), max(num_classes, int(labels.max()) + 1)).double()
            offsets = onehot[:, onehot.sum(0) > 0]
        design = torch.cat([z - mean, offsets], 1)
        gram = design.T @ design
        d = z.shape[1]
        ridge = torch.zeros(len(gram), dtype=z.dtype)
        ridge[:d] = RIDGE * gram.diagonal()[:d].mean().clamp(min=1e-12)  # the offsets go unpenalised
        beta = torch.linalg.solve(gram + torch.diag(ridge), design.T @ targets.double())
        return cls(tuple(names), beta[:d].T.to(codes.dtype))

    @classmethod
    def local(cls, names: tuple[str, ...], codes: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor],
              background=colour.WHITE, batch: int = 256) -> "PropertyModel":
        """The derivatives of the properties at each code (N, P, D), through `decode` (which must
        let gradients through) and the measures (colour.py: smooth almost everywhere). Where a
        property is not linear in the code (a saturation that grows with the length of part of
        it, say) one slope for all codes points the wrong way for many; these point the right way
        for each, over the short moves an edit makes."""
        slopes = []
        for chunk in codes.split(batch):
            z = chunk.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                t = table(names, decode(z), background)
                rows = [torch.autograd.grad(t[:, j].sum(), z, retain_graph=j < t.shape[1] - 1)[0]
                        for j in range(t.shape[1])]
            slopes.append(torch.stack(rows, 1).detach())
        return cls(tuple(names), torch.cat(slopes))

    def move(self, name: str, asked: torch.Tensor) -> torch.Tensor:
        """Code moves (N, D) that change property `name` by `asked` (N, P; its columns) and the others
        as little as can be, under the model: the least squares of ASKED_WEIGHT x (asked change
        missed)^2 + (others' change)^2 + a small multiple of the move's length^2. Where the code has
        room (D >= P), that is the smallest move that changes the others by nothing; where it has
        not, the asked change still comes first."""
        m = self.slopes.double()
        m = m.expand(len(asked), *m.shape) if m.ndim == 2 else m  # (N, P, D)
        rows = torch.zeros(m.shape[1], dtype=torch.bool)
        rows[columns(self.names)[name]] = True
        a, others = m[:, rows], m[:, ~rows]
        normal = ASKED_WEIGHT * a.mT @ a + others.mT @ others  # (N, D, D)
        scale = normal.diagonal(dim1=1, dim2=2).mean(1).clamp(min=1e-12).view(-1, 1, 1)
        normal = normal + 1e-6 * scale * torch.eye(m.shape[2], dtype=m.dtype)
        right = ASKED_WEIGHT * (asked.double()[:, rows, None] * a).sum(1)  # (N, D): a^T asked
        return torch.linalg.solve(normal, right).to(self.slopes.dtype)


def asked_change(model: PropertyModel, name: str, amount: float, current: torch.Tensor) -> torch.Tensor:
    """The change of the regression's targets (N, P) that asks `amount` of `name` and nothing of the
    others: `current` (N, P) is the targets' present value (hue's vector is rotated from it)."""
    cols = columns(model.names)
    asked = torch.zeros_like(current)
    where = cols[name]
    if name == "hue":
        asked[:, where] = colour.rotate(current[:, where], amount) - current[:, where]
    else:
        asked[:, where] = amount
    return asked


@dataclass
class PropertyEdit:
    """The outcome of a calibrated property edit of N images."""

    images: torch.Tensor  # (N, C, H, W) the edited images
    name: str
    asked: float
    achieved: torch.Tensor  # (N,) measured change from the reconstruction to the edit
    scales: torch.Tensor  # (N,) the multiple of the linear model's move each image kept
    unit_achieved: torch.Tensor  # (N,) the change the linear model's move alone (multiple 1) made
    drift: dict[str, torch.Tensor]  # (N,) change of each held property
    reconstructions: torch.Tensor  # (N, C, H, W) the unedited codes decoded: where changes are measured from


def calibrated_edit(z: torch.Tensor, decode: Callable[[torch.Tensor], torch.Tensor], names: tuple[str, ...],
                    name: str, amount: float, background=colour.WHITE, fitted: PropertyModel | None = None,
                    local: bool = True, scales: tuple[float, ...] = SCALES) -> PropertyEdit:
    """Codes z (N, D) moved so that `name` changes by `amount` and the other properties `names` by
    as little as the linear model allows, the step chosen per image by a line search over `scales`.
    `decode` turns codes into images in [0, 1] (labels bound by the caller).

    Two linear models propose a move each, and the line search tries both: with `local`, the
    derivatives of `decode` at each code (`PropertyModel.local`; `decode` must let gradients
    through), right for each image but blind where a measure is flat (the area of a figure whose
    edge is sharp changes only at its anti-aliased rim); and a regression `fitted` over many codes
    (`PropertyModel.fit`), one slope for all, which sees the trend past such flats."""
    models = ([PropertyModel.local(tuple(names), z, decode, background)] if local else []) + \
             ([fitted] if fitted is not None else [])
    if not models:
        raise GenforgeError("a calibrated edit needs a property model: local derivatives or a fitted one")
    for model in models:
        if name not in model.names or tuple(model.names) != tuple(models[0].names):
            raise GenforgeError(f"the property models must model the same properties, {name!r} among them")
    with torch.no_grad():
        return _search(z, decode, models, name, amount, background, scales)


def _search(z, decode, models, name, amount, background, scales) -> PropertyEdit:
    base = decode(z)
    names = models[0].names
    current = table(names, base, background)
    moves = torch.stack([m.move(name, asked_change(m, name, amount, current)) for m in models])  # (M, N, D)
    k = torch.tensor(scales, dtype=z.dtype)
    n, s = len(z), len(scales)
    candidates = z[None, None] + k.view(1, -1, 1, 1) * moves[:, None]  # (M, S, N, D)
    images = decode(candidates.flatten(0, 2)).unflatten(0, (len(models) * s, n))
    got = torch.stack([change(name, images[i], base, background) for i in range(len(images))])  # (M * S, N)
    others = [o for o in names if o != name]
    drifts = torch.stack([torch.stack([change(o, images[i], base, background).abs() for o in others]).sum(0)
                          for i in range(len(images))]) if others else torch.zeros_like(got)
    # nearest the asked change, the others moved least; among ties the smaller move
    steps = k.repeat(len(models))
    error = (got - amount).abs() + DRIFT_WEIGHT * drifts + 1e-3 * abs(amount) * steps.view(-1, 1)
    best = error.argmin(0)
    rows = torch.arange(n)
    chosen = images[best, rows]
    unit = (best // s) * s + (scales.index(1.0) if 1.0 in scales else 0)  # the same model's move at multiple 1
    drift = {other: change(other, chosen, base, background) for other in names if other != name}
    return PropertyEdit(chosen, name, float(amount), got[best, rows], steps[best], got[unit, rows], drift, base)
