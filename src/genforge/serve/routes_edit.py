"""The edit routes: every `genforge edit` operation on uploaded or test images, answered at once
(`POST /v1/models/{name}/edit/{op}`) or as a job (`POST /v1/jobs/edit/{name}/{op}`, then
`GET /v1/jobs/{job_id}`, its `/events` stream, `DELETE` to cancel); and the live sliders: a
model's latent directions (`GET /v1/models/{name}/directions`) and one image moved along them
(`POST /v1/models/{name}/traverse`).

The form is checked here, each bad field answered 422 naming it; uploads are read on the worker
threads (serve/limits.py: PNG or JPEG only, the pixel limit before decoding), and the edit itself
is serve/editing.py's `run_edit`, on the worker threads too.
"""

from __future__ import annotations

import base64
import io
import threading
from typing import Annotated, Any, Literal

import torch
from PIL import Image
from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from ..edit.masks import box_mask
from ..edit.operations import OPS, EditRequest, parse_target
from ..errors import GenforgeError
from ..report.grid import to_uint8
from .editing import RESTARTS, SEARCH_STEPS, model_directions, run_edit, traverse_image
from .errors import ApiError
from .limits import b64, read_image_upload
from .routes_core import (MAX_SEED, V1_ERRORS, check_count, error_responses, in_worker, make_signer, marker_for,
                          resolve_label)

MAX_SEARCH_STEPS = 1000  # latent search's Adam steps per request, at most
MAX_RESTARTS = 8
MAX_DIRECTIONS = 32
MAX_OFFSET = 100.0  # a slider's offset, in units of its direction's scale
METHODS = Literal["slerp", "lerp", "sefa", "pca", "transport", "vector", "auto"]


# --- bodies ---------------------------------------------------------------------------------------
class EditResult(BaseModel):
    op: str
    images: list[str] = Field(description="the results as base64 PNGs, one per input (interpolate, directions: "
                              "one strip per path, its frames left to right), each with a signed provenance "
                              "manifest naming its input (genforge verify)")
    inputs: list[str] = Field(description="the inputs at the model's size, base64 PNGs (not signed: the model did "
                              "not make them)")
    frames: list[list[str]] | None = Field(description="interpolate, directions: each path's frames (base64 PNGs, "
                                           "signed)")
    gif: str | None = Field(description="interpolate, directions: the paths as an animated GIF (base64), "
                            "played forward then back")
    reads_before: list[str] | None = Field(description="the class the classifier reads in each input (null: no "
                                           "classifier for these images)")
    reads_after: list[str] | None = Field(description="the class it reads in each result (null for the path ops)")
    realism_before: list[float] | None = Field(description="P(real) of each input by the detector or the "
                                               "discriminator (null where none judges)")
    realism_after: list[float] | None
    summary: str = Field(description="one line, as `genforge edit` prints it")


class JobView(BaseModel):
    id: str
    state: Literal["queued", "running", "done", "failed", "cancelled"]
    progress: float = Field(description="0..1")
    message: str
    result: EditResult | None = Field(description="the edit's answer, once done")
    error: str | None = Field(description="why it failed (one line)")
    created: float = Field(description="Unix time (s)")
    started: float | None
    finished: float | None
    expires_at: float | None = Field(description="Unix time (s) after which a finished job is forgotten")


class Directions(BaseModel):
    method: Literal["sefa", "pca"]
    directions: int = Field(description="how many directions (offsets a traverse takes)")
    scales: list[float] = Field(description="the code's step per unit of offset along each direction")
    values: list[float] = Field(description="SeFa: eigenvalues; PCA: standard deviations of the codes")
    span: float = Field(description="a useful slider range: -span..+span")


class TraverseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="the sample to start from (as POST .../sample)")
    label: int | str | None = Field(None, description="a class number or name (conditional models)")
    offsets: list[Annotated[float, Field(ge=-MAX_OFFSET, le=MAX_OFFSET, allow_inf_nan=False)]] = Field(
        default_factory=list, max_length=MAX_DIRECTIONS, description="offset along each direction, in order")
    temperature: float = Field(1.0, gt=0, le=1000, allow_inf_nan=False)


SPAN = 3.0
PNG_OK = {200: {"description": "one image, with a signed provenance manifest",
                "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}}}
EVENTS_OK = {200: {"description": "server-sent events: `progress` events, then one named by the end state "
                   "(done, failed, cancelled) holding the whole job", "content": {
                       "text/event-stream": {"schema": {"type": "string"}}}}}
EDIT_ERRORS = error_responses(*V1_ERRORS, 400, 404, 409, 413, 415)


# --- the form -------------------------------------------------------------------------------------
class EditForm:
    """The edit form's fields (multipart), checked by FastAPI (types, ranges: 422 naming the field)."""

    def __init__(
        self,
        images: Annotated[list[UploadFile] | None,
                          File(description="PNG or JPEG files to edit (or test_indices)")] = None,
        test_indices: Annotated[str | None, Form(description="indices of test images instead of files: 0,3,5",
                                                 max_length=10000)] = None,
        mask: Annotated[UploadFile | None, File(description="inpaint: PNG, white = missing (or box)")] = None,
        box: Annotated[str | None, Form(description="inpaint: missing box x0,y0,x1,y1 in pixels of the model's size",
                                        max_length=100)] = None,
        to: Annotated[str | None, Form(description="attribute: a class, a property (thickness, slant, saturation, "
                                       "brightness, area) or PROPERTY=AMOUNT (hue=+0.2); swap-class: a class",
                                       max_length=100)] = None,
        source: Annotated[int | None, Form(alias="from", ge=0, le=100000,
                                           description="attribute/swap-class: the source class")] = None,
        label_only: Annotated[bool, Form(description="swap-class: change the label alone")] = False,
        strength: Annotated[float | None, Form(ge=-100, le=100, allow_inf_nan=False)] = None,
        steps: Annotated[int, Form(ge=2, le=64, description="interpolate/directions: images per path")] = 8,
        method: Annotated[METHODS | None, Form(description="interpolate: slerp, lerp; directions: sefa, pca; "
                                               "attribute: transport, vector, auto")] = None,
        blend: Annotated[float, Form(ge=0, le=16, allow_inf_nan=False)] = 0.0,
        samples: Annotated[int, Form(ge=1, le=8, description="inpaint: completions averaged")] = 1,
        num_directions: Annotated[int, Form(ge=1, le=MAX_DIRECTIONS)] = 5,
        span: Annotated[float, Form(gt=0, le=100, allow_inf_nan=False)] = SPAN,
        search_steps: Annotated[int, Form(ge=1, le=MAX_SEARCH_STEPS, description="latent search: Adam steps")]
        = SEARCH_STEPS,
        restarts: Annotated[int, Form(ge=1, le=MAX_RESTARTS, description="latent search: starts per image")]
        = RESTARTS,
        seed: Annotated[int, Form(ge=0, le=MAX_SEED)] = 0,
    ):
        self.images, self.test_indices, self.mask_file = images, test_indices, mask
        self.params: dict[str, Any] = {
            "to": to, "from": source, "label_only": label_only, "strength": strength, "steps": steps,
            "method": method, "box": box, "blend": blend, "samples": samples, "num_directions": num_directions,
            "span": span, "search_steps": search_steps, "restarts": restarts, "seed": seed}


class Prepared:
    """An edit ready to run: the editor, the images (uint8) and labels, the params, and the signer
    of the PNGs it answers (provenance: each result names the edit and its input)."""

    def __init__(self, editor, op: str, images: torch.Tensor, labels: torch.Tensor | None, params: dict,
                 signer=None, marker=None):
        self.editor, self.op, self.images, self.labels, self.params = editor, op, images, labels, params
        self.signer, self.marker = signer, marker

    def run(self, progress=None, cancelled=None) -> dict:
        result = run_edit(self.editor, self.op, self.images, self.labels, self.params, progress, cancelled,
                          mark=self.marker.images if self.marker is not None else None)
        return sign_result(result, self.signer) if self.signer is not None else result


def sign_result(result: dict, signer) -> dict:
    """The edit's answer with its made PNGs signed: each result with its own input's digest (for
    interpolate and directions each strip and frame with all the inputs'); the inputs and the GIF
    are left as they are."""
    paths = result.get("frames") is not None
    result["images"] = [_signed(text, signer, None if paths else i) for i, text in enumerate(result["images"])]
    if paths:
        result["frames"] = [[_signed(text, signer) for text in path] for path in result["frames"]]
    return result


def _signed(text: str, signer, index: int | None = None) -> str:
    """A base64 PNG (made by editing.py) again, carrying the signer's manifest: the same pixels."""
    with Image.open(io.BytesIO(base64.b64decode(text)), formats=["PNG"]) as image:
        image.load()
        return b64(signer.png_bytes(image, index))


def _check_op(op: str) -> None:
    if op not in OPS:
        raise ApiError(404, f"unknown edit {op!r}; the edits: {', '.join(OPS)}", "op")


async def prepare(request: Request, name: str, op: str, form: EditForm) -> Prepared:
    """The form checked field by field and the uploads read (on the worker threads)."""
    state = request.app.state
    registry, config = state.registry, state.config
    _check_op(op)
    model = registry.get(name)
    shape = tuple(model.image_shape)
    params = dict(form.params)
    if op in ("attribute", "swap-class"):
        try:
            parse_target(EditRequest(op, target=params["to"], cli=False))
        except GenforgeError as e:
            raise ApiError(422, str(e), "to") from None
    if op == "inpaint":
        given = [f for f, v in (("mask", form.mask_file), ("box", params["box"])) if v is not None]
        if len(given) != 1:
            raise ApiError(422, "inpaint needs exactly one of mask (a PNG, white = missing) or box (x0,y0,x1,y1)",
                           "box")
        if params["box"] is not None:
            try:
                box_mask(params["box"], shape[1])
            except GenforgeError as e:
                raise ApiError(422, f"box: {e}", "box") from None
    files = form.images or []
    if bool(files) == (form.test_indices is not None):
        raise ApiError(422, "give the images to edit as files (images) or as test_indices, one of the two",
                       "images")
    if files:
        check_count(len(files), "images", request)
        uploads = [await upload.read() for upload in files]
        background = model.run_config["data"].get("background")
        images = await in_worker(request, lambda: torch.stack([
            read_image_upload(data, "images", config.max_pixels, shape, background) for data in uploads]))
        labels = None
    else:
        images, labels = await in_worker(request, _test_images, registry, name, form.test_indices, request)
    if op == "interpolate" and len(images) < 2:
        raise ApiError(422, f"interpolate needs at least 2 images (it goes from image 0 to 1, 2 to 3, ...), "
                       f"got {len(images)}", "images")
    if form.mask_file is not None and op == "inpaint":
        data = await form.mask_file.read()
        params["mask"] = await in_worker(request, _read_mask, data, config.max_pixels, shape[1])
    editor = await in_worker(request, registry.editor, name)
    recorded = {**form.params, "mask": form.mask_file is not None and op == "inpaint",
                "test_indices": form.test_indices}
    marker = marker_for(request, model)
    signer = await in_worker(request, make_signer, request, model, f"edit:{op}",
                             {**recorded, "watermark": marker is not None}, images)
    return Prepared(editor, op, images, labels, params, signer, marker)


def _test_images(registry, name: str, text: str, request: Request) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The test images at the given indices ("0,3,5"), with their labels in the run's labelling."""
    try:
        indices = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ApiError(422, f"test_indices: write indices separated by commas, e.g. 0,3,5; got {text[:50]!r}",
                       "test_indices") from None
    if not indices:
        raise ApiError(422, "test_indices: give at least one index, e.g. 0,3,5", "test_indices")
    check_count(len(indices), "test_indices", request)
    data = registry.test_set(name)
    bad = [i for i in indices if not 0 <= i < len(data)]
    if bad:
        raise ApiError(422, f"test_indices: {bad[0]} is not an index of the {len(data)} test images", "test_indices")
    index = torch.tensor(indices)
    return data.images[index], None if data.labels is None else data.labels[index]


def _read_mask(data: bytes, max_pixels: int, size: int) -> torch.Tensor:
    """An uploaded mask (1, 1, size, size), 1 = missing: white pixels of a picture resized to the
    model's size as the images are (transparent pixels count as black: known)."""
    pixels = read_image_upload(data, "mask", max_pixels, (1, size, size), background="black")
    mask = (pixels > 127).float()[None]
    if not mask.any():
        raise ApiError(422, "mask: no pixel is marked missing (white = missing)", "mask")
    return mask


# --- the routes -----------------------------------------------------------------------------------
router = APIRouter(prefix="/v1", tags=["edit"])


@router.post("/models/{name}/edit/{op}", response_model=EditResult, responses=EDIT_ERRORS,
             summary="Edit images through the model and answer when done (op: " + ", ".join(OPS) + ")")
async def edit(request: Request, name: str, op: str, form: Annotated[EditForm, Depends()]) -> dict:
    prepared = await prepare(request, name, op, form)
    return await in_worker(request, prepared.run)


@router.post("/jobs/edit/{name}/{op}", status_code=202, response_model=JobView,
             responses=error_responses(*V1_ERRORS, 400, 404, 409, 413, 415, 429, 503),
             summary="Start an edit as a job: answers its id at once (poll it, or stream its events)")
async def submit_edit(request: Request, name: str, op: str, form: Annotated[EditForm, Depends()]) -> dict:
    prepared = await prepare(request, name, op, form)
    store = _store(request)
    job = store.submit(lambda ctx: prepared.run(ctx.progress, ctx.cancelled))
    return store.view(job.id)


@router.get("/jobs/{job_id}", response_model=JobView, tags=["jobs"], responses=error_responses(*V1_ERRORS, 404),
            summary="A job's state, progress and, once done, its result")
async def get_job(request: Request, job_id: str) -> dict:
    return _store(request).view(job_id)


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse, tags=["jobs"],
            responses={**EVENTS_OK, **error_responses(*V1_ERRORS, 404)},
            summary="A job's progress as server-sent events, until it ends")
async def job_events(request: Request, job_id: str) -> StreamingResponse:
    store = _store(request)
    store.get(job_id)  # 404 now, before the stream starts
    return StreamingResponse(store.events(job_id), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.delete("/jobs/{job_id}", response_model=JobView, tags=["jobs"], responses=error_responses(*V1_ERRORS, 404),
               summary="Cancel a job (running work stops at its next step); a finished job is forgotten")
async def cancel_job(request: Request, job_id: str) -> dict:
    return _store(request).cancel(job_id)


@router.get("/models/{name}/directions", response_model=Directions, responses=error_responses(*V1_ERRORS, 404, 409),
            summary="The model's latent directions for sliders (SeFa for GANs, PCA of training codes otherwise)")
async def directions(request: Request, name: str,
                     k: Annotated[int, Query(ge=1, le=MAX_DIRECTIONS, description="how many")] = 5) -> dict:
    found = await _directions(request, name, k)
    return {"method": found["method"], "directions": len(found["directions"]),
            "scales": found["scales"].tolist(), "values": found["values"].tolist(), "span": SPAN}


@router.post("/models/{name}/traverse", response_class=Response,
             responses={**PNG_OK, **error_responses(*V1_ERRORS, 400, 404, 409)},
             summary="One sample moved along the model's directions: the image at these slider offsets")
async def traverse(request: Request, name: str, body: TraverseRequest) -> Response:
    registry = request.app.state.registry
    model = registry.get(name)
    label = await in_worker(request, resolve_label, registry, name, model, body.label)
    found = await _directions(request, name, max(len(body.offsets), 1))
    if len(body.offsets) > len(found["directions"]):
        raise ApiError(422, f"offsets: model {name!r} has {len(found['directions'])} directions, got "
                       f"{len(body.offsets)} offsets", "offsets")
    marker = marker_for(request, model)
    params = {"seed": body.seed, "label": label, "offsets": body.offsets, "temperature": body.temperature,
              "method": found["method"], "watermark": marker is not None}
    signer = await in_worker(request, make_signer, request, model, "traverse", params)

    def picture() -> bytes:
        image = traverse_image(model, found, body.seed, label, body.offsets, body.temperature)[None]
        return signer.png_bytes(to_uint8(marker.images(image) if marker is not None else image)[0])
    image = await in_worker(request, picture)
    return Response(image, media_type="image/png", headers={"X-Seed": str(body.seed)})


def _store(request: Request):
    store = getattr(request.app.state, "jobs", None)
    if store is None:
        raise ApiError(503, "this server runs no jobs")
    return store


_directions_lock = threading.Lock()


async def _directions(request: Request, name: str, k: int) -> dict:
    """The model's first k directions, computed once (for the most asked so far) and kept on the app."""
    state = request.app.state
    registry = state.registry
    registry.get(name)
    with _directions_lock:
        if not hasattr(state, "edit_directions"):
            state.edit_directions = {}
        cache = state.edit_directions
    found = cache.get(name)
    if found is None or (len(found["directions"]) < k and found["asked"] < k):
        def compute() -> dict:
            try:
                return model_directions(registry.editor(name), k)
            except GenforgeError as e:
                raise ApiError(409, str(e)) from None
        found = {**await in_worker(request, compute), "asked": k}
        cache[name] = found
    n = min(k, len(found["directions"]))
    return {**found, "directions": found["directions"][:n], "scales": found["scales"][:n],
            "values": found["values"][:n]}


__all__ = ["Directions", "EditForm", "EditResult", "JobView", "TraverseRequest", "router"]
