"""What the server takes in and gives out, and its limits: the request-body cap (413), uploaded
images (PNG or JPEG only, their size read from the header and checked before a single pixel is
decoded), and images leaving as PNG.

Uploads are converted the way genforge's own readers convert files (data/folder.py): upright
(EXIF), transparency composited onto the run's background, grey or RGB, resized with PIL's
antialiasing filters. Edits crop the centre square as `genforge edit` does; the detector judges
the whole picture as `genforge detect` does, and, as there, a colour picture is never greyed for a
grey detector (nor a grey one coloured): its verdict would mean nothing.
"""

from __future__ import annotations

import base64
import io
import warnings

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..data.folder import WHITE, crop_resize, parse_background, reads_gray, resize_square, to_mode
from ..detect.inputs import is_colour, mode_refusal
from ..report.grid import make_grid, to_uint8
from .errors import ApiError, error_body

FORMATS = ["PNG", "JPEG"]  # Pillow opens these and nothing else: no parser of a format nobody needs


# --- request bodies -------------------------------------------------------------------------------
class BodyTooLarge(HTTPException):
    """Raised from inside `receive` once a streamed body passes the limit. An HTTPException, so that
    FastAPI's body reading lets it through (it turns other errors into a 400) and app.py's handler
    answers it with the error body."""

    def __init__(self, limit: int):
        super().__init__(413, body_limit_message(limit))


def body_limit_message(limit: int) -> str:
    return f"the request body is larger than the server's limit of {limit / 2**20:.3g} MB (--max-body-mb)"


class WatchedSend:
    """An ASGI `send` that remembers whether the answer has started, and its status: what a
    middleware needs to know whether it may still answer (once started, an answer cannot be
    replaced) and what to count."""

    def __init__(self, send: Send):
        self.send, self.started, self.status = send, False, 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started, self.status = True, message["status"]
        await self.send(message)


class BodyLimitMiddleware:
    """413 for a request body over `max_bytes`: at once when Content-Length says so, and counted
    as the body streams in otherwise (chunked uploads have no Content-Length, and a client may
    send more than it declared), so no route ever holds more than the limit in memory."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            status = 413 if declared.isdigit() else 400
            message = body_limit_message(self.max_bytes) if status == 413 else "Content-Length is not a number"
            return await JSONResponse(error_body(status, message), status)(scope, receive, send)
        received, watched = 0, WatchedSend(send)

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as e:  # read outside FastAPI's handlers (a route reading the stream itself)
            if watched.started:
                raise
            await JSONResponse(error_body(413, e.detail), 413)(scope, receive, send)


# --- uploaded images ------------------------------------------------------------------------------
def open_upload(data: bytes, field: str, max_pixels: int, name: str | None = None) -> Image.Image:
    """The uploaded picture, decoded and upright. ApiError 415 for anything but PNG or JPEG, 413
    (naming the field) for a picture of more than `max_pixels` pixels, judged from its header
    before it is decoded (a small file can declare a huge picture: a decompression bomb), and 422
    for a file that ends early or does not decode. Messages start "field (name): " (name: the
    file's, where the field takes several)."""
    what = f"{field} ({name[:200]})" if name else field
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit is checked below
            im = Image.open(io.BytesIO(data), formats=FORMATS)
    except Image.DecompressionBombError:
        raise ApiError(413, f"{what}: the image is far larger than the server's limit of {max_pixels} pixels",
                       field) from None
    except UnidentifiedImageError:
        raise ApiError(415, f"{what}: not a PNG or JPEG image", field) from None
    except Exception:  # Pillow signals a damaged header with many exception types
        raise ApiError(422, f"{what}: a damaged PNG or JPEG image (its header does not read)", field) from None
    width, height = im.size
    if width * height > max_pixels:
        raise ApiError(413, f"{what}: the image is {width}x{height} = {width * height} pixels, more than the "
                       f"server's limit of {max_pixels} (--max-pixels)", field)
    try:
        im.load()
        return ImageOps.exif_transpose(im)  # phone photos store their rotation in EXIF
    except Exception:  # truncated data, a bad chunk, a broken JPEG stream: all mean unreadable
        raise ApiError(422, f"{what}: the {im.format} image is truncated or damaged and does not decode",
                       field) from None


def read_image_upload(data: bytes, field: str, max_pixels: int, shape: tuple[int, int, int],
                      background=None, name: str | None = None) -> torch.Tensor:
    """An uploaded picture as uint8 (C, H, W) in a model's `shape`, read as `genforge edit` reads a
    file: transparency over the run's `background` (None: white), grey or RGB as the model wants,
    the centre square resized with an antialiasing filter."""
    channels, size, _ = shape
    im = to_mode(open_upload(data, field, max_pixels, name), channels == 1, parse_background(background))
    return torch.from_numpy(crop_resize(im, size).copy()).permute(2, 0, 1).contiguous()


def read_detect_upload(data: bytes, field: str, max_pixels: int, shape: tuple[int, int, int],
                       name: str | None = None) -> torch.Tensor:
    """An uploaded picture as floats (C, H, W) in [0, 1] for the detector, read as `genforge detect`
    reads a file: the whole picture resized; a grey picture stored as RGB is judged grey, but a
    picture of the other mode is refused (422)."""
    channels, size, _ = shape
    im = open_upload(data, field, max_pixels, name)
    im = to_mode(im, reads_gray(im), WHITE)
    if im.mode == "RGB" and channels == 1:
        if is_colour(np.asarray(im)):
            raise ApiError(422, f"{field}: " + mode_refusal(name or "this image", 3, 1), field)
        im = im.convert("L")
    elif im.mode == "L" and channels == 3:
        raise ApiError(422, f"{field}: " + mode_refusal(name or "this image", 1, 3), field)
    return torch.from_numpy(resize_square(im, size).copy()).permute(2, 0, 1).float() / 255


# --- images leaving -------------------------------------------------------------------------------
def png_bytes(array: np.ndarray) -> bytes:
    """A uint8 (H, W, C) picture, C 1 or 3, as PNG file bytes."""
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format="PNG")
    return buffer.getvalue()


def image_png(image: torch.Tensor) -> bytes:
    """One image (C, H, W) in [0, 1] as PNG bytes."""
    return png_bytes(to_uint8(image[None])[0])


def grid_png(images: torch.Tensor, nrow: int | None = None) -> bytes:
    """Images (N, C, H, W) in [0, 1] tiled into one PNG (report/grid.py's layout)."""
    return png_bytes(make_grid(images, nrow=nrow))


def b64(data: bytes) -> str:
    """PNG bytes as base64 text for a JSON body (our images are 28-64 px: a few hundred bytes each)."""
    return base64.b64encode(data).decode("ascii")


def images_b64(images: torch.Tensor) -> list[str]:
    """Each image (N, C, H, W) in [0, 1] as a base64 PNG."""
    return [b64(image_png(image)) for image in images]


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """Numeric arrays as the bytes of a compressed .npz file (plain arrays: nothing pickled)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


__all__ = ["BodyLimitMiddleware", "BodyTooLarge", "FORMATS", "WatchedSend", "b64", "grid_png", "image_png",
           "images_b64", "npz_bytes", "open_upload", "png_bytes", "read_detect_upload", "read_image_upload"]
