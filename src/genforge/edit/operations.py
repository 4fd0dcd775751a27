"""The six operations of `genforge edit` as a person asks for them, shared by the two faces that
offer them: the CLI (`genforge edit`) and the server (`genforge serve`). Each takes an Editor,
the labelled input images and an `EditRequest` (the op and its settings, free of argparse and
HTTP), and answers an `EditOutcome`: the result images (or, for interpolate and directions, the
frames of each path), what the classifier reads before and after, the realism check, and a
one-line summary. Nothing here prints or writes a file.

    outcome = run_edit_request(editor, editor.labelled(images), EditRequest("swap-class", target="3"))
    outcome.summary()          # "classifier reads class 3 in 90% of edited images (before: 10%); ..."
    outcome.summary("x.png")   # the same, naming where the caller wrote the results

The checks of a request (a target that is a class, a property or PROPERTY=AMOUNT; exactly one of
a mask and a box) raise GenforgeError naming the setting as the face calls it (`--to` on the
command line, `to` in a form): `EditRequest.cli` picks which.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..data import ImageSet
from ..errors import GenforgeError
from .inputs import as_float

OPS = ("reconstruct", "interpolate", "attribute", "swap-class", "inpaint", "directions")
PATH_OPS = ("interpolate", "directions")  # they make paths of frames, not one result per input
WROTE = "\0written\0"  # stands in a summary where the caller's output path goes


@dataclass
class EditRequest:
    """One edit as asked: the op and its settings (None: the op's default)."""
    op: str
    target: str | None = None  # attribute: a class, a property or PROPERTY=AMOUNT; swap-class: a class
    source: int | None = None  # attribute/swap-class: the source class
    label_only: bool = False  # swap-class: change the label alone
    strength: float | None = None
    steps: int = 8  # interpolate/directions: images per path
    method: str | None = None
    mask: torch.Tensor | str | None = None  # inpaint: (1 or N, 1, H, W), 1 = missing; or a PNG's path
    box: str | None = None  # inpaint: "x0,y0,x1,y1", instead of a mask
    blend: float = 0.0
    samples: int = 1
    num_directions: int = 5
    span: float = 3.0
    cli: bool = True  # name settings in messages as flags (--to) rather than form fields (to)

    def flag(self, name: str) -> str:
        """A setting's name as the person wrote it: `--label-only` on the command line, `label_only` in a form."""
        return "--" + name.replace("_", "-") if self.cli else name.replace("-", "_")


@dataclass
class EditOutcome:
    """What an edit made. `results` (N, C, H, W) for the ops that edit each input; `frames`
    (steps, P, C, H, W) for interpolate and directions (P paths); `middle`: inpainting's inputs
    with the hole shown grey. Reads are class indices (None without a classifier, and after a
    path op); realism is P(real) per image (None where nobody judges)."""
    op: str
    inputs: torch.Tensor
    text: str  # the summary, with WROTE where the output's path goes
    results: torch.Tensor | None = None
    frames: torch.Tensor | None = None
    middle: torch.Tensor | None = None
    reads_before: torch.Tensor | None = None
    reads_after: torch.Tensor | None = None
    realism_before: torch.Tensor | None = None
    realism_after: torch.Tensor | None = None

    def summary(self, written: str | None = None) -> str:
        """One line: naming `written` (where the caller put the results) when given, else
        without a path ("reconstructed 4 image(s): MSE ...")."""
        if written is not None:
            return self.text.replace(WROTE, str(written))
        text = self.text.replace(f"; wrote {WROTE}", "").replace(f" into {WROTE}", "").replace(f" to {WROTE}", "")
        return "made " + text[len("wrote "):] if text.startswith("wrote ") else text


def run_edit_request(editor, images: ImageSet, request: EditRequest) -> EditOutcome:
    """`request.op` on `images` (labelled as the run labels: `editor.labelled`)."""
    if request.op not in OPS:
        raise GenforgeError(f"unknown edit {request.op!r}; choose one of: {', '.join(OPS)}")
    x = as_float(images)
    outcome = OPERATIONS[request.op](editor, images, x, request)
    if outcome.results is not None:
        outcome.reads_before, outcome.reads_after = editor.reads(x), editor.reads(outcome.results)
    elif outcome.reads_before is None:
        outcome.reads_before = editor.reads(x)
    return outcome


def reconstruct(editor, images, x, request) -> EditOutcome:
    from .invert import reconstruction_quality
    labels = labels_if_conditional(editor, images)
    out = editor.reconstruct(x, labels)
    q = reconstruction_quality(x, out, editor.feature_net)
    agreement = f", classifier agreement {q['agreement']:.0%}" if "agreement" in q else ""
    realism = judge_realism(editor, x, out, labels)
    return _outcome(request, x, out, realism,
                    f"reconstructed {len(x)} image(s) into {WROTE}: MSE {q['mse']:.4f}, PSNR {q['psnr']:.1f} dB, "
                    f"SSIM {q['ssim']:.3f}{agreement}; {realism[0]}")


def interpolate(editor, images, x, request) -> EditOutcome:
    if len(x) < 2:
        raise GenforgeError("interpolate needs at least 2 images: it goes from image 0 to 1, 2 to 3, ...")
    pairs = len(x) // 2
    labels = labels_if_conditional(editor, images)
    l0, l1 = (None, None) if labels is None else (labels[0:2 * pairs:2], labels[1:2 * pairs:2])
    method = request.method or "slerp"
    frames = editor.interpolate(x[0:2 * pairs:2], x[1:2 * pairs:2], request.steps, method, l0, l1)
    return EditOutcome(request.op, x, f"wrote {pairs} interpolation(s) of {request.steps} steps ({method}) to {WROTE}",
                       frames=frames)


def attribute(editor, images, x, request) -> EditOutcome:
    from .attribute import PROPERTIES
    from .pipeline import ATTRIBUTE_STRENGTH
    target = parse_target(request)
    strength = ATTRIBUTE_STRENGTH if request.strength is None else request.strength
    if isinstance(target, tuple):  # PROPERTY=AMOUNT: calibrated (calibrate.py)
        return _property_change(editor, images, x, request, *target)
    if isinstance(target, str) and target not in PROPERTIES:
        target = editor.class_index(target)
    if isinstance(target, int):
        # without a source class: the input's labels where it has them, else what the classifier reads
        source = images.labels if request.source is None else torch.full((len(x),), request.source)
        out = editor.attribute(x, target, source, strength, request.method or "auto")
        realism = judge_realism(editor, x, out)
        return _outcome(request, x, out, realism,
                        f"{class_change(editor, x, out, target)}; wrote {WROTE}; {realism[0]}")
    labels = labels_if_conditional(editor, images)
    out = editor.attribute(x, target, strength=strength, method=request.method or "auto", labels=labels)
    realism = judge_realism(editor, x, out, labels)
    return _outcome(request, x, out, realism, f"moved along {target} by {strength:g}; wrote {WROTE}; {realism[0]}")


def _property_change(editor, images, x, request, name: str, amount: float) -> EditOutcome:
    if request.strength is not None:
        raise GenforgeError(f"{request.flag('to')} {request.target} asks for an amount of {name}; "
                            f"{request.flag('strength')} is for a move without one")
    labels = labels_if_conditional(editor, images)
    edit = editor.change_property(x, name, amount, labels)
    got = edit.achieved
    held = ", ".join(f"{k} {v.mean():+.3f}" for k, v in edit.drift.items())
    kept = ""
    if editor.feature_net is not None:  # the category (and vendor) read in the edit as in the input
        reader = editor.feature_net
        (c0, s0), (c1, s1) = reader.category_and_style(x), reader.category_and_style(edit.images)
        kept = f"; classifier reads the same class in {(c0 == c1).float().mean():.0%}"
        if s0 is not None:
            kept += f", the same style in {(s0 == s1).float().mean():.0%}"
    realism = judge_realism(editor, x, edit.images, labels)
    return _outcome(request, x, edit.images, realism,
                    f"{name}: asked {amount:+g}, achieved {got.mean():+.3f} (sd {got.std(correction=0):.3f}; the "
                    f"linear model's step alone {edit.unit_achieved.mean():+.3f}), measured from the reconstructions; "
                    f"held: {held}{kept}; wrote {WROTE}; {realism[0]}")


def swap_class(editor, images, x, request) -> EditOutcome:
    from .swap_class import TRANSPORT_STRENGTH
    target = parse_target(request)
    if isinstance(target, tuple):
        raise GenforgeError(f"swap-class {request.flag('to')} takes a class number or name, not {request.target!r}")
    if (request.strength is not None and editor.model.is_conditional
            and not editor.moves_code_on_swap(not request.label_only)):
        why = (f"{request.flag('label-only')} moves none" if request.label_only
               else f"model {editor.model.name!r} keeps its code and changes the label alone")
        raise GenforgeError(f"{request.flag('strength')} sets how far a conditional autoencoder's code moves in a "
                            "class swap; " + why)
    source = (torch.full((len(x),), request.source) if request.source is not None
              else editor.source_labels(images))
    strength = TRANSPORT_STRENGTH if request.strength is None else request.strength
    labels = editor.swap_targets(target, source)  # a name, or per image on a category/vendor run
    out = editor.swap_class(x, source, labels, move_code=not request.label_only, strength=strength)
    target = labels[0].item() if (labels == labels[0]).all() else labels
    realism = judge_realism(editor, x, out, source, labels)
    return _outcome(request, x, out, realism,
                    f"{class_change(editor, x, out, target)}; wrote {WROTE}; {realism[0]}")


def inpaint(editor, images, x, request) -> EditOutcome:
    mask = inpaint_mask(request, editor.image_shape[1])
    # A conditional model completes under the input's labels where it has them; else it searches
    # the class too (the classifier's reading of an image with a hole is a poor guess).
    labels = images.labels if editor.model.is_conditional else None
    out = editor.inpaint(x, mask, labels, request.blend, request.samples)
    name = "model" if request.samples == 1 else f"model (mean of {request.samples})"
    if editor.neighbours:
        name += f", started from {editor.neighbours} training neighbours"
    if editor.search_prior is not None:
        name += f", {editor.search_prior.kind} prior"
    if editor.model.is_conditional and labels is None:
        name += ", class found by the search"
    fills = {name: out, **editor.baselines(x, mask)}
    mse = ", ".join(f"{name} {masked_mse(fill, x, mask):.4f}" for name, fill in fills.items())
    summary = f"masked MSE: {mse}"
    if images.labels is not None and editor.feature_net is not None:
        acc = ", ".join(f"{name} {(editor.reads(fill) == images.labels).float().mean():.0%}"
                        for name, fill in fills.items())
        summary += f"; classifier accuracy: {acc}"
    realism = judge_realism(editor, x, out, labels)
    outcome = _outcome(request, x, out, realism, f"{summary}; wrote {WROTE}; {realism[0]}")
    outcome.middle = x * (1 - mask) + 0.5 * mask
    return outcome


def directions(editor, images, x, request) -> EditOutcome:
    method = request.method or ("sefa" if editor.model.first_layer_weight() is not None else "pca")
    labels = labels_if_conditional(editor, images)
    dirs, scales = editor.directions(method, request.num_directions, x, labels)
    start = editor.invert(x[:1], None if labels is None else labels[:1])[0]
    walks = editor.traverse(start, dirs, scales if method == "pca" else torch.ones(len(dirs)), request.steps,
                            request.span, None if labels is None else labels[:1])
    what = "standard deviations" if method == "pca" else "eigenvalues"
    return EditOutcome(request.op, x, f"wrote {len(dirs)} {method} direction(s) to {WROTE}; {what}: "
                       + ", ".join(f"{v:.3g}" for v in scales), frames=walks.transpose(0, 1))


OPERATIONS = {"reconstruct": reconstruct, "interpolate": interpolate, "attribute": attribute,
              "swap-class": swap_class, "inpaint": inpaint, "directions": directions}


# --- the parts each op shares -------------------------------------------------------------------
def _outcome(request, x, out, realism, text) -> EditOutcome:
    return EditOutcome(request.op, x, text, results=out, realism_before=realism[1], realism_after=realism[2])


def parse_target(request: EditRequest) -> int | str | tuple[str, float]:
    """The target as a class number, a name (a class's or a property's), or (property, amount)
    for PROPERTY=AMOUNT (attribute only)."""
    to = request.flag("to")
    if request.target is None:
        properties = ", a property, or PROPERTY=AMOUNT such as hue=+0.2" if request.op == "attribute" else ""
        raise GenforgeError(f"{request.op} needs {to} (a class number or name{properties})")
    name, sep, amount = request.target.partition("=")
    if sep and request.op == "attribute":
        from .calibrate import CALIBRATED
        if name.strip() not in CALIBRATED:
            raise GenforgeError(f"{to} {request.target}: an amount can be asked of {', '.join(CALIBRATED)}, "
                                f"not {name.strip()!r}")
        try:
            value = float(amount)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value):
            raise GenforgeError(f"{to} {request.target}: the amount must be a finite number, "
                                f"e.g. {name.strip()}=+0.2")
        return name.strip(), value
    return int(request.target) if request.target.lstrip("-").isdigit() else request.target


def inpaint_mask(request: EditRequest, size: int) -> torch.Tensor:
    """The request's mask (1, 1, size, size) or (N, 1, size, size), 1 = missing: its mask (read
    from the PNG where it is a path), or its box drawn as one."""
    from .masks import box_mask, read_mask
    if (request.mask is None) == (request.box is None):
        raise GenforgeError(f"inpaint needs exactly one of {request.flag('mask')} PNG or "
                            f"{request.flag('box')} x0,y0,x1,y1")
    if request.box is not None:
        return box_mask(request.box, size)
    return request.mask if isinstance(request.mask, torch.Tensor) else read_mask(request.mask, size)


def labels_if_conditional(editor, images: ImageSet) -> torch.Tensor | None:
    """The labels a conditional model edits under (given, else read); None for any other model."""
    return editor.source_labels(images) if editor.model.is_conditional else None


def class_change(editor, x, out, target) -> str:
    """How often the classifier reads the target: one class (a number), or a class per image (N,)."""
    if editor.feature_net is None:
        return "no classifier to read the classes"
    before = (editor.reads(x) == target).float().mean()
    after = (editor.reads(out) == target).float().mean()
    names = editor.class_names
    if isinstance(target, int):
        named = 0 <= target < len(names) and str(names[target]) != str(target)  # digits' names are their numbers
        what = f"class {target}" + (f" ({names[target]})" if named else "")
    else:
        what = "each image's target class"
    return f"classifier reads {what} in {after:.0%} of edited images (before: {before:.0%})"


def judge_realism(editor, x, out, labels=None, out_labels=None) -> tuple[str, torch.Tensor | None,
                                                                         torch.Tensor | None]:
    """P(real) of the inputs and of the results (None where nobody judges) and a clause saying so."""
    before, after = editor.realism(x, labels), editor.realism(out, labels if out_labels is None else out_labels)
    if before is None and editor.realism_judge == "discriminator":
        return ("realism: unavailable (the conditional discriminator needs labels and there is no classifier)",
                None, None)
    if before is None:
        return (f"realism: unavailable ({editor.model.name} has no discriminator; "
                "give --detector DET_DIR to judge with a detector)", None, None)
    return f"{editor.realism_judge} P(real): inputs {before.mean():.2f}, results {after.mean():.2f}", before, after


def masked_mse(fill, x, mask) -> float:
    """The mean squared error of a fill over the masked pixels."""
    mask = mask.expand_as(x)
    return float(((fill - x).pow(2) * mask).sum() / mask.sum())


__all__ = ["EditOutcome", "EditRequest", "OPS", "PATH_OPS", "class_change", "inpaint_mask", "judge_realism",
           "labels_if_conditional", "parse_target", "run_edit_request"]
