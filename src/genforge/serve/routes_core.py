"""The core routes: the loaded models, sampling, the test images, detection, and the operator's
/healthz, /readyz and /metrics.

Routes parse and check requests and shape answers; every forward pass runs on the worker threads,
through a micro-batcher (sample, detect) or the executor, never on the event loop. Each route
declares the error bodies it can answer (`error_responses`), so the OpenAPI schema is the truth
about the responses (schemathesis checks it).
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
import torch
from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ..api import Model
from ..detect.heatmap import overlay
from ..detect.softness import is_soft
from ..errors import GenforgeError
from ..provenance import Signer, build_manifest, digests
from ..provenance.verify import own_keys, unsigned, verify_bytes
from ..report.grid import make_grid, to_uint8
from .batching import MicroBatcher
from .errors import ApiError, ErrorBody
from .limits import b64, images_b64, npz_bytes, png_bytes, read_detect_upload

MAX_SEED = 2**53 - 1  # the largest whole number JavaScript (the page) holds exactly
NPZ = "application/x-npz"
ERROR_TEXT = {400: "Malformed request", 401: "Missing or wrong API key", 403: "Refused: a request from another "
              "site's page", 404: "No such model or route", 409: "Not possible with what the server loaded",
              413: "Request body or uploaded image too large", 415: "Not a PNG or JPEG image",
              422: "A field is invalid (the message names it)", 429: "Too many requests waiting; retry after "
              "the Retry-After header's seconds", 500: "Internal error (logged on the server)",
              503: "Not ready, or shutting down"}
V1_ERRORS = (401, 403, 422, 500)  # what any /v1 route may answer (key, origin, bad field, a bug)


def error_responses(*codes: int) -> dict:
    """The `responses=` of a route that can answer these statuses with the error body."""
    return {code: {"model": ErrorBody, "description": ERROR_TEXT[code]} for code in sorted(set(codes))}


# --- request and response bodies ------------------------------------------------------------------
class ModelInfo(BaseModel):
    name: str = Field(description="the name requests use: the run directory's basename")
    family: str = Field(description="the model family, e.g. cvae, cgan")
    image_shape: list[int] = Field(description="[channels, height, width]")
    conditional: bool = Field(description="whether sampling takes a label")
    classes: list[str] | None = Field(description="the names of the run's labels, or null")
    latent_dim: int
    prior: str = Field(description="the latent prior sampling draws from: gmm, flow, or none (N(0, I))")
    capabilities: list[str] = Field(description="from sample, classes, encode, invert, directions, edit, detect")
    watermarked: bool = Field(False, description="the images made for this model carry the server's watermark "
                              "key in their pixels (genforge serve --watermark; its image shape only)")


class DetectorInfo(BaseModel):
    image_shape: list[int]
    threshold: float = Field(description="the probability at and above which an image is called generated/edited")


class ModelList(BaseModel):
    models: list[ModelInfo]
    detector: DetectorInfo | None


class SampleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(16, ge=1, description="images to draw (at most the server's --max-images)")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="null: a random seed, echoed in the answer")
    label: int | str | None = Field(None, description="a class number or name (conditional models); null: "
                                    "classes drawn uniformly")
    temperature: float = Field(1.0, gt=0, le=1000, allow_inf_nan=False, description="spread of the latent codes")
    format: Literal["grid", "json", "npz"] | None = Field(None, description="null: chosen by the Accept header "
                                                         f"(image/png: grid, {NPZ}: npz, else json)")


class SampleJson(BaseModel):
    seed: int
    labels: list[int] | None
    images: list[str] = Field(description="each image as a base64 PNG")
    grid: str = Field(description="all images tiled, as a base64 PNG")


class TestImages(BaseModel):
    images: list[str] = Field(description="base64 PNGs at the model's size")
    labels: list[int] | None
    indices: list[int] = Field(description="their indices in the data set's test split")


class Provenance(BaseModel):
    status: Literal["signed", "broken", "none"] = Field(description="signed: the manifest and pixels are as key "
                                                        "`key` signed them; broken: the pixels or the manifest "
                                                        "changed after signing; none: no manifest, the origin is "
                                                        "unknown (never evidence that the image is authentic)")
    key: str | None = Field(description="signed: the signing key's fingerprint")
    own: bool = Field(description="the key is this server's own (genforge keys)")
    model: dict[str, Any] | None = Field(description="signed: the model the manifest names (family, dataset, "
                                         "image_shape, weights_sha256)")
    operation: str | None = Field(description="signed: how the image was made (sample, edit:OP, traverse)")
    parameters: dict[str, Any] | None = Field(description="signed: the operation's parameters")
    created: str | None = Field(description="signed: when (UTC, ISO 8601)")
    inputs: list[str] | None = Field(description="signed edits: SHA-256 of each input image's pixels")
    reason: str | None = Field(description="broken, none: why")
    c2pa: dict[str, Any] | None = Field(None, description="C2PA content credentials in the upload, where the "
                                        "server has c2pa-python: state (Trusted, Valid, Invalid), trusted_here, "
                                        "signer, failures; null: none")


class WatermarkReading(BaseModel):
    key: str = Field(description="the bits read, in hex")
    matches: str | None = Field(description="the server's key, which the reading is compared with")
    bits_agree: int = Field(description="bits that agree with it")
    bits: int = Field(description="bits a key holds")
    p_value: float = Field(description="the chance that an unmarked image agrees on that many bits or more "
                           "(binomial), times the places tried for a crop")
    marked: bool = Field(description="p_value at most 1e-6: the image carries the server's key")


class Verdict(BaseModel):
    name: str = Field(description="the uploaded file's name")
    probability: float = Field(description="probability that the image is generated or edited")
    verdict: Literal["generated/edited", "real"]
    soft: bool | None = Field(description="the image looks blurred or resized: the verdict is weak "
                              "(null: the detector's card has no softness floor)")
    heatmap: str = Field(description="base64 PNG of the image with its likely edited regions in red")
    provenance: Provenance = Field(description="the upload's signed genforge manifest, read from its PNG chunk "
                                   "(genforge verify)")
    watermark: WatermarkReading | None = Field(None, description="the server's watermark read in the upload's "
                                               "pixels (genforge serve --watermark); null: the server has none, or the "
                                               "image is under 8x8 pixels, too small to hold one")


class Detection(BaseModel):
    results: list[Verdict]
    threshold: float


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    ready: bool
    models: list[str]


# --- the batched work -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Draw:
    """One sample request as the batcher carries it."""
    n: int
    seed: int
    label: int | None
    temperature: float


def sample_batch(model: Model):
    """run_batch for a model's sampler: each request draws its own codes from its own seed
    (Model.draw), then one forward pass (Model.generate) makes the images of all of them. In eval
    mode an image depends on its code alone, so a request gets the images it would get alone."""
    def run(items: list[Draw]) -> list:
        drawn = []
        for item in items:
            try:
                drawn.append(model.draw(item.n, item.seed, item.label, temperature=item.temperature))
            except GenforgeError as e:  # this request's own problem: the others still run
                drawn.append(e)
        good = [d for d in drawn if not isinstance(d, Exception)]
        if not good:
            return drawn
        z = torch.cat([codes for codes, _ in good])
        labels = torch.cat([lab for _, lab in good]) if good[0][1] is not None else None
        images = model.generate(z, labels).split([len(codes) for codes, _ in good])
        out, i = [], 0
        for d in drawn:
            if isinstance(d, Exception):
                out.append(d)
            else:
                out.append((images[i], d[1]))
                i += 1
        return out
    return run


def detect_batch(registry):
    """run_batch for the detector: the images of all requests judged in one Detector.predict; each
    request gets its probabilities, soft flags (detect/softness.py) and edit-map heatmaps."""
    detector, card = registry.detector, registry.detector_card
    floor = card.get("softness", {}).get("sharpness_floor")  # older cards have none: soft is null

    def run(items: list[torch.Tensor]) -> list:
        images = torch.cat(items)
        probs, maps = detector.predict(images)
        soft = is_soft(images, floor).tolist() if floor is not None else [None] * len(images)
        # the heatmap of the image at the detector's size (enlarged to be seen), not of the upload:
        # a 4-megapixel upload would make a multi-megabyte answer
        heatmaps = [b64(png_bytes(overlay(picture, m))) for picture, m in zip(to_uint8(images), maps)]
        out, i = [], 0
        for item in items:
            k = len(item)
            out.append((probs[i:i + k].tolist(), soft[i:i + k], heatmaps[i:i + k]))
            i += k
        return out
    return run


def build_batchers(app) -> dict[str, MicroBatcher]:
    """A batcher for each model's sampling ("NAME/sample") and one for the detector ("detector/detect")."""
    state = app.state
    config, registry = state.config, state.registry

    def batcher(run, name):
        return MicroBatcher(run, config.max_batch, config.max_wait_ms, config.queue_size, state.executor,
                            state.metrics, name)
    batchers = {f"{name}/sample": batcher(sample_batch(model), f"{name}/sample")
                for name, model in registry.models.items()}
    if registry.detector is not None:
        batchers["detector/detect"] = batcher(detect_batch(registry), "detector/detect")
    return batchers


async def in_worker(request: Request, fn, *args):
    """fn(*args) on the server's worker threads (the event loop never runs model or image work)."""
    return await asyncio.get_running_loop().run_in_executor(request.app.state.executor, partial(fn, *args))


# --- the routes ------------------------------------------------------------------------------------
v1 = APIRouter(prefix="/v1", tags=["models"])
ops = APIRouter(tags=["operations"])


@v1.get("/models", response_model=ModelList, responses=error_responses(*V1_ERRORS),
        summary="The loaded models, what each can do, and the detector")
async def list_models(request: Request) -> dict:
    registry = request.app.state.registry
    return {"models": [_info(request, name) for name in registry.names], "detector": registry.detector_info()}


def _info(request: Request, name: str) -> dict:
    registry = request.app.state.registry
    return {**registry.info(name), "watermarked": marker_for(request, registry.get(name)) is not None}


@v1.get("/models/{name}", response_model=ModelInfo, responses=error_responses(*V1_ERRORS, 404),
        summary="One model: its shape, classes, prior and capabilities")
async def model_info(name: str, request: Request) -> dict:
    return _info(request, name)


def check_count(value: int, field: str, request: Request) -> None:
    limit = request.app.state.config.max_images
    if value > limit:
        raise ApiError(422, f"{field}: at most {limit} images per request (the server's --max-images), got {value}",
                       field)


def resolve_label(registry, name: str, model: Model, label: int | str | None) -> int | None:
    """The label number of a sample request's label (a number or a class name), checked."""
    if label is None:
        return None
    if not model.module.is_conditional:
        raise ApiError(422, f"label: model {name!r} is not conditional; it cannot sample a given label", "label")
    try:
        index = registry.editor(name).class_index(label)
    except GenforgeError as e:
        raise ApiError(422, f"label: {e}", "label") from None
    classes = model.module.config.num_classes
    if not 0 <= index < classes:
        raise ApiError(422, f"label: {index} does not exist; model {name!r} has classes 0-{classes - 1}", "label")
    return index


def wanted_format(body: SampleRequest, accept: str) -> str:
    """The format asked for, by the body's field or else the Accept header (in its order of preference)."""
    if body.format:
        return body.format
    choices = {"image/png": "grid", NPZ: "npz", "application/json": "json"}
    ranked = []
    for position, part in enumerate(accept.split(",")):
        media, *params = [p.strip() for p in part.split(";")]
        q = next((p[2:] for p in params if p.startswith("q=")), "1")
        try:
            ranked.append((-float(q), position, media.lower()))
        except ValueError:
            continue
    for _, _, media in sorted(ranked):
        if media in choices:
            return choices[media]
    return "json"


SAMPLE_OK = {200: {"description": "the images: JSON, a PNG grid or an .npz, as asked; the X-Seed header echoes "
                   "the seed (X-Labels: the labels, comma-separated). Every PNG carries a signed provenance "
                   "manifest (the server's key; genforge verify)",
                   "content": {"image/png": {"schema": {"type": "string", "format": "binary"}},
                               NPZ: {"schema": {"type": "string", "format": "binary"}}},
                   "headers": {"X-Seed": {"schema": {"type": "string"}, "description": "the seed used"}}}}


@v1.post("/models/{name}/sample", response_model=SampleJson,
         responses={**SAMPLE_OK, **error_responses(*V1_ERRORS, 400, 404, 413, 429, 503)},
         summary="Draw n images; the same seed gives the same images")
async def sample(name: str, body: SampleRequest, request: Request):
    state = request.app.state
    model = state.registry.get(name)
    check_count(body.n, "n", request)
    label = resolve_label(state.registry, name, model, body.label)
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    images, labels = await state.batchers[f"{name}/sample"].submit(
        Draw(body.n, seed, label, body.temperature), body.n)
    marker = marker_for(request, model)
    if marker is not None:  # in the pixels of every format, the .npz's arrays included
        images = await in_worker(request, marker.images, images)
    labels = labels.tolist() if labels is not None else None
    fmt = wanted_format(body, request.headers.get("accept", ""))
    headers = {"X-Seed": str(seed), **({"X-Labels": ",".join(map(str, labels))} if labels is not None else {})}
    if fmt == "npz":  # arrays: no place for a manifest
        arrays = {"images": to_uint8(images), "seed": np.array(seed, dtype=np.int64),
                  **({"labels": np.array(labels, dtype=np.int64)} if labels is not None else {})}
        return Response(await in_worker(request, lambda: npz_bytes(**arrays)), media_type=NPZ, headers=headers)
    params = {"n": body.n, "seed": seed, "label": label, "temperature": body.temperature, "prior": model.prior_kind,
              "watermark": marker is not None}
    signer = await in_worker(request, make_signer, request, model, "sample", params)
    if fmt == "grid":
        return Response(await in_worker(request, lambda: signer.png_bytes(make_grid(images))),
                        media_type="image/png", headers=headers)
    pictures, grid = await in_worker(request, lambda: (
        [b64(signer.png_bytes(picture, index=i)) for i, picture in enumerate(to_uint8(images))],
        b64(signer.png_bytes(make_grid(images)))))
    return JSONResponse({"seed": seed, "labels": labels, "images": pictures, "grid": grid}, headers=headers)


def marker_for(request: Request, model: Model):
    """The server's watermark (a provenance.watermark.Marker) where it marks this model's images, else None."""
    marker = request.app.state.watermark
    return marker if marker is not None and marker.fits(model.image_shape) else None


def make_signer(request: Request, model: Model, operation: str, parameters: dict, inputs=None) -> Signer:
    """A Signer of the PNGs of one answer, with the server's key (app.state.signing_key). On the
    worker threads: the first answer of a model hashes its weights file (then remembered)."""
    key = request.app.state.signing_key
    return Signer(build_manifest(model, operation, parameters, key, None if inputs is None else digests(inputs)), key)


@v1.get("/models/{name}/test-images", response_model=TestImages, responses=error_responses(*V1_ERRORS, 404),
        summary="Images of the test split of the model's data set (to pick one to edit)")
async def test_images(request: Request, name: str, start: int = Query(0, ge=0),
                      n: int = Query(16, ge=1, description="at most the server's --max-images")) -> dict:
    registry = request.app.state.registry
    registry.get(name)
    check_count(n, "n", request)
    images, labels, indices = await in_worker(request, registry.test_images, name, start, n)
    return {"images": await in_worker(request, images_b64, images.float() / 255),
            "labels": labels.tolist() if labels is not None else None, "indices": indices}


@v1.post("/detect", response_model=Detection, tags=["detect"],
         responses=error_responses(*V1_ERRORS, 400, 409, 413, 415, 429, 503),
         summary="Judge uploaded PNG/JPEG images: generated or edited, and where")
async def detect(request: Request,
                 images: Annotated[list[UploadFile], File(description="PNG or JPEG files")]) -> dict:
    state = request.app.state
    registry = state.registry
    if registry.detector is None:
        raise ApiError(409, "no detector is loaded; start the server with --detector DET_DIR")
    check_count(len(images), "images", request)
    uploads = [(upload.filename or f"image {i}", await upload.read()) for i, upload in enumerate(images)]
    x = await in_worker(request, read_uploads, uploads, registry.detector.image_shape, state.config.max_pixels)
    probs, soft, heatmaps = await state.batchers["detector/detect"].submit(x, len(x))
    provenance = await in_worker(request, read_provenance, uploads)
    marker = state.watermark
    marks = (await in_worker(request, marker.read_uploads, [data for _, data in uploads]) if marker is not None
             else [None] * len(uploads))
    threshold = float(registry.detector_card["threshold"])
    results = [{"name": filename[:200], "probability": p, "verdict": "generated/edited" if p >= threshold else "real",
                "soft": s, "heatmap": h, "provenance": signed, "watermark": mark}
               for (filename, _), p, s, h, signed, mark in zip(uploads, probs, soft, heatmaps, provenance, marks)]
    return {"results": results, "threshold": threshold}


def read_provenance(uploads: list[tuple[str, bytes]]) -> list[dict]:
    """The signed-manifest verdict of each uploaded file (already checked and decoded once by
    read_uploads, so a file that does not decode here is rare: it reads as no manifest)."""
    own = own_keys()
    out = []
    for filename, data in uploads:
        try:
            out.append(verify_bytes(data, filename, own))
        except GenforgeError:
            out.append(unsigned())
    return out


def read_uploads(uploads: list[tuple[str, bytes]], shape: tuple[int, int, int], max_pixels: int) -> torch.Tensor:
    """The uploaded (name, bytes) as the detector's images (N, C, H, W); a refusal names the file."""
    return torch.stack([read_detect_upload(data, "images", max_pixels, shape, filename) for filename, data in uploads])


@ops.get("/healthz", response_model=Health, responses=error_responses(500), summary="The server is alive")
async def healthz() -> dict:
    return {"status": "ok"}


@ops.get("/readyz", response_model=Ready, responses={503: {"model": Ready, "description": "not ready"},
                                                     **error_responses(500)},
         summary="The models are loaded and the server takes requests")
async def readyz(request: Request):
    state = request.app.state
    names = state.registry.names
    ready = bool(names) and not getattr(state, "shutting_down", False)
    return JSONResponse({"ready": ready, "models": names}, status_code=200 if ready else 503)


@ops.get("/metrics", response_class=Response, responses={
    200: {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}},
    **error_responses(401, 500)}, summary="Requests, latency, queue depth, batch sizes and errors (Prometheus)")
async def metrics(request: Request) -> Response:
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)


router = APIRouter()
router.include_router(v1)
router.include_router(ops)


# --- the schema: limits the app only knows at start -------------------------------------------------
def apply_limits(schema: dict, config, names: list[str] | None = None) -> dict:
    """Writes the server's own limits (--max-images) and the names of its loaded models into the
    OpenAPI schema, so that it states what the server accepts: the request models are declared
    once, for any server. A client generated from the schema (or a fuzzer) then knows the model
    names and edit operations there are; others are still answered 404."""
    from ..edit.operations import OPS
    components = schema.get("components", {}).get("schemas", {})
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter["name"] == "name" and names:
                    parameter["schema"] = {**parameter.get("schema", {}), "enum": list(names)}
                elif parameter.get("in") == "path" and parameter["name"] == "op":
                    parameter["schema"] = {**parameter.get("schema", {}), "enum": list(OPS)}
    if "SampleRequest" in components:
        components["SampleRequest"]["properties"]["n"]["maximum"] = config.max_images
    test = schema.get("paths", {}).get("/v1/models/{name}/test-images", {}).get("get", {})
    for parameter in test.get("parameters", []):
        if parameter["name"] == "n":
            parameter["schema"]["maximum"] = config.max_images
    body = schema.get("paths", {}).get("/v1/detect", {}).get("post", {}).get("requestBody", {})
    multipart = body.get("content", {}).get("multipart/form-data", {})
    form = components.get(multipart.get("schema", {}).get("$ref", "").rsplit("/", 1)[-1], {})
    if "images" in form.get("properties", {}):
        form["properties"]["images"]["maxItems"] = config.max_images
        multipart["encoding"] = {"images": {"contentType": "image/png, image/jpeg"}}  # anything else: 415
    return schema


__all__ = ["Detection", "ModelInfo", "ModelList", "Provenance", "SampleJson", "SampleRequest", "TestImages", "apply_limits",
           "build_batchers", "error_responses", "in_worker", "make_signer", "router"]
