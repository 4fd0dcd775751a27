"""The server's edits: one `genforge edit` operation on images that came in a request, answered as
JSON (PNGs as base64), with progress reported and a cancel checked between latent-search steps.
No HTTP here: routes_edit.py parses the form, this runs the library's operation
(genforge.edit.operations, the same code `genforge edit` runs) and shapes what it made.

    result = run_edit(registry.editor("cgan"), "swap-class", images, labels, {"to": "3", "search_steps": 50},
                      progress=lambda f, m: print(f, m), cancelled=lambda: False)
    result["images"], result["reads_after"], result["summary"]

Also what the live sliders need: a model's latent directions, computed once and cached by the
caller (`model_directions`), and one image at an offset along them (`traverse_image`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from functools import cached_property

import torch

from ..data import ImageSet
from ..edit import Editor, FitConfig
from ..edit.fit import on_search_step
from ..edit.gif import gif_bytes
from ..edit.operations import OPS, PATH_OPS, EditOutcome, EditRequest, run_edit_request
from ..errors import GenforgeError
from .jobs import JobCancelled
from .limits import b64, grid_png, images_b64

SEARCH_STEPS = FitConfig.steps  # latent search's defaults, as `genforge edit` has them
RESTARTS = FitConfig.restarts
DIRECTION_CODES = 1000  # training images whose codes an autoencoder's PCA directions are found from

Progress = Callable[[float, str], None]


def run_edit(editor: Editor, op: str, images: torch.Tensor, labels: torch.Tensor | None, params: Mapping,
             progress: Progress | None = None, cancelled: Callable[[], bool] | None = None,
             mark: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict:
    """Edit `images` (uint8 (N, C, H, W) at the model's shape; `labels` (N,) in the run's labelling,
    or None: the classifier reads them) with `op`. `params` holds the form's fields by name: to,
    from, label_only, strength, steps, method, mask (a float tensor, 1 = missing) or box, blend,
    samples, num_directions, span, search_steps, restarts, seed; absent ones take `genforge edit`'s
    defaults. `progress(fraction, message)` hears of each latent-search step; `cancelled()` is
    asked after each (and before and after the edit), and a True stops the edit with JobCancelled.
    `mark` (the server's watermark: provenance.watermark.Marker.images) is applied to the results and frames
    before they are encoded, after the classifier's and the detector's readings.

    Answers {op, images, inputs, frames, gif, reads_before, reads_after, realism_before,
    realism_after, summary} (see `outcome_json`)."""
    if op not in OPS:
        raise GenforgeError(f"unknown edit {op!r}; choose one of: {', '.join(OPS)}")
    report = progress or (lambda fraction, message: None)
    stop = cancelled or (lambda: False)
    _check(stop)
    request = edit_request(op, params)
    search = FitConfig(steps=int(params.get("search_steps") or SEARCH_STEPS),
                       restarts=int(params.get("restarts") or RESTARTS), seed=int(params.get("seed") or 0))
    mine = _with_search(editor, search)
    counter = SearchProgress(expected_searches(mine, request), report, stop)
    report(0.0, f"{op}: starting")
    try:
        with on_search_step(counter):
            outcome = run_edit_request(mine, ImageSet(images, labels), request)
    finally:
        _keep_caches(editor, mine)
    _check(stop)
    if mark is not None:
        if outcome.results is not None:
            outcome.results = mark(outcome.results)
        if outcome.frames is not None:
            outcome.frames = mark(outcome.frames.flatten(0, 1)).view_as(outcome.frames)
    report(0.99, f"{op}: encoding the results")
    return outcome_json(outcome, mine.class_names)


def edit_request(op: str, params: Mapping) -> EditRequest:
    """The library's request from the form's fields (messages name them as fields: `to`, not `--to`)."""
    defaults = EditRequest(op)
    given = {"target": params.get("to"), "source": params.get("from"), "label_only": params.get("label_only"),
             "strength": params.get("strength"), "steps": params.get("steps"), "method": params.get("method"),
             "mask": params.get("mask"), "box": params.get("box"), "blend": params.get("blend"),
             "samples": params.get("samples"), "num_directions": params.get("num_directions"),
             "span": params.get("span")}
    settings = {k: v for k, v in given.items() if v is not None}
    return EditRequest(op, **{k: settings.get(k, getattr(defaults, k)) for k in given}, cli=False)


def _check(cancelled: Callable[[], bool]) -> None:
    if cancelled():
        raise JobCancelled


def _with_search(editor: Editor, search: FitConfig) -> Editor:
    """The editor with this request's latent search, sharing everything it has built (classifier,
    training images, class codes): a shallow copy, so concurrent requests never change each
    other's settings."""
    mine = copy.copy(editor)
    mine.fit, mine.progress = search, False
    return mine


def _keep_caches(editor: Editor, mine: Editor) -> None:
    """What the request's copy built (class codes, property models) kept by the shared editor too."""
    for name, value in vars(mine).items():
        if isinstance(getattr(type(editor), name, None), cached_property):
            editor.__dict__.setdefault(name, value)


def expected_searches(editor: Editor, request: EditRequest) -> int:
    """How many latent searches the edit runs (progress counts their steps): none where an encoder
    inverts, one per inversion by optimisation, and inpainting searches `samples` times."""
    if request.op == "inpaint":
        return max(1, request.samples)
    if editor.model.is_autoencoder:
        return 0
    if request.op == "interpolate":
        return 2
    if request.op == "directions":  # PCA inverts the inputs, then the walk's start; SeFa the start alone
        sefa = request.method == "sefa" or (request.method is None and editor.model.first_layer_weight() is not None)
        return 1 if sefa else 2
    return 1


class SearchProgress:
    """The callback latent search calls after each step (edit/fit.py's `on_search_step`): checks
    the cancel flag and reports the fraction of all the edit's expected search steps done."""

    def __init__(self, expected: int, report: Progress, cancelled: Callable[[], bool]):
        self.expected, self.report, self.cancelled = max(expected, 1), report, cancelled
        self.finished, self.fraction = 0, 0.0

    def __call__(self, done: int, total: int) -> None:
        if self.cancelled():
            raise JobCancelled
        part = (self.finished + done / max(total, 1)) / self.expected
        if done >= total:
            self.finished += 1
        self.fraction = max(self.fraction, min(part, 0.98))
        search = min(self.finished + (done < total), self.expected)
        self.report(self.fraction, f"latent search {search}/{self.expected}: step {done}/{total}")


def outcome_json(outcome: EditOutcome, class_names: list[str]) -> dict:
    """What an edit made, as the API answers it: `images` the results as base64 PNGs (for
    interpolate and directions one strip per path, its frames left to right), `inputs` the inputs
    at the model's size, `frames` a list per path of its frames, `gif` the paths as an animated GIF
    (base64; null for the other ops), the classifier's reads of inputs and results as class names
    (null without a classifier; `reads_after` null for the path ops), P(real) of each by the
    realism judge (null where none judges), and the one-line summary."""
    paths = outcome.op in PATH_OPS
    if paths:
        by_path = outcome.frames.transpose(0, 1)  # (P, steps, C, H, W)
        results = [b64(grid_png(path, nrow=len(path))) for path in by_path]
        frames = [images_b64(path) for path in by_path]
        gif = b64(gif_bytes(outcome.frames))
    else:
        results, frames, gif = images_b64(outcome.results.clamp(0, 1)), None, None
    return {"op": outcome.op, "images": results, "inputs": images_b64(outcome.inputs), "frames": frames, "gif": gif,
            "reads_before": _names(outcome.reads_before, class_names),
            "reads_after": _names(outcome.reads_after, class_names),
            "realism_before": _floats(outcome.realism_before), "realism_after": _floats(outcome.realism_after),
            "summary": outcome.summary()}


def _names(reads: torch.Tensor | None, class_names: list[str]) -> list[str] | None:
    if reads is None:
        return None
    return [class_names[k] if 0 <= k < len(class_names) else str(k) for k in reads.tolist()]


def _floats(values: torch.Tensor | None) -> list[float] | None:
    return None if values is None else [round(float(v), 4) for v in values.flatten()]


# --- live sliders ---------------------------------------------------------------------------------
def model_directions(editor: Editor, k: int) -> dict:
    """k latent directions of the editor's model for the sliders: SeFa from the generator's first
    layer where it has one (read from the weights: instant), else PCA of the codes of
    DIRECTION_CODES training images (an autoencoder's encoder). Answers {method, directions (k, D),
    scales (k,): the code's step per unit of slider (1 for SeFa, whose directions live in N(0, I);
    the standard deviation along a PCA direction), values (k,): eigenvalues or standard deviations}."""
    model = editor.model
    if model.first_layer_weight() is not None:
        dirs, values = editor.directions("sefa", k)
        return {"method": "sefa", "directions": dirs, "scales": torch.ones(len(dirs)), "values": values}
    if not model.is_autoencoder:
        raise GenforgeError(f"model {model.name!r} has no linear first layer (SeFa) and no encoder (PCA of "
                            "training codes): no directions to offer")
    train = editor.train
    index = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:DIRECTION_CODES]
    x = train.images[index].float() / 255
    labels = train.labels[index] if model.is_conditional and train.labels is not None else None
    dirs, scales = editor.directions("pca", k, x, labels)
    return {"method": "pca", "directions": dirs, "scales": scales, "values": scales}


def traverse_image(model, directions: dict, seed: int, label: int | None, offsets: list[float],
                   temperature: float = 1.0) -> torch.Tensor:
    """One image (C, H, W): the code `Model.draw` gives for this seed, label and temperature
    (the one sampling gives), moved by offset_i * scale_i along direction i, then generated."""
    z, labels = model.draw(1, seed, label, temperature=temperature)
    k = len(offsets)
    step = torch.tensor(offsets, dtype=z.dtype) * directions["scales"][:k].to(z.dtype)
    z = z + (step[:, None] * directions["directions"][:k].to(z.dtype)).sum(0, keepdim=True)
    return model.generate(z, labels)[0]


__all__ = ["edit_request", "expected_searches", "model_directions", "outcome_json", "run_edit", "traverse_image"]
