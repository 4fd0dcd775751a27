"""The FastAPI app of `genforge serve`: its state, the middleware that guards it, the one error
body, the routers, the web page and a clean shutdown.

    app = create_app(ServeConfig(), Registry.load(["runs/cgan"]))

`app.state` holds what every route reads: `config` (ServeConfig), `registry` (Registry), `metrics`
(ServeMetrics), `executor` (the worker threads every model runs on), `batchers` (MicroBatchers by
"MODEL/sample" and "detector/detect") and `jobs` (serve/jobs.py's JobStore, when that module is
there), and `signing_key`, this machine's provenance key (every PNG answered is signed).
Middleware, from the outside in: metrics (counts every answer, refusals included), CORS
(only with cors_origins), security (cross-origin refusal, API key), the body-size limit, and a
last guard that turns any unexpected exception into a 500 with a fixed message: a traceback is
logged, never sent.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from importlib import import_module
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from ..errors import GenforgeError
from ..provenance import signing_key
from . import routes_core
from .config import ServeConfig
from .errors import ApiError, error_body
from .limits import BodyLimitMiddleware, WatchedSend
from .metrics import UNMATCHED, ServeMetrics
from .registry import Registry
from .security import SecurityMiddleware, needs_key

log = logging.getLogger("genforge.serve")
STATIC = Path(__file__).parent / "static"
INTERNAL = "internal error (logged on the server)"
SHUTDOWN_WAIT_S = 30  # at most this long for running model work to end when the server stops
PLACEHOLDER = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>genforge serve</title></head>
<body><h1>genforge serve</h1><p>The web page is not installed with this copy of genforge.
The API answers under <a href="/v1/models">/v1</a>; its schema is at <a href="/openapi.json">/openapi.json</a>.</p>
</body></html>"""


def create_app(config: ServeConfig, registry: Registry | None = None, watermark=None) -> FastAPI:
    """The app serving `registry`'s models under `config`'s limits (no registry: no models, /readyz 503).
    `watermark` (a provenance.watermark.Marker): the key embedded in the images it makes for the models
    of its shape, and read by /v1/detect."""
    registry = registry if registry is not None else Registry()
    # /docs is FastAPI's Swagger UI, which loads its script and style from a CDN: it needs the
    # internet. The page at / and everything under /v1 work offline; /openapi.json is local too.
    app = FastAPI(title="genforge serve", version=__version__, lifespan=lifespan,
                  description="Sample, edit and detect images with genforge models. Errors answer "
                  '`{"error": {"status", "message", "field"}}`.')
    state = app.state
    state.config, state.registry, state.metrics = config, registry, ServeMetrics()
    state.watermark = watermark
    # every PNG the server answers (samples, edits, slider images) is signed with this machine's
    # key (genforge keys); made here at the first start, so a key that cannot be made stops the start
    state.signing_key = signing_key()
    _start(app)

    _add_handlers(app)
    # add_middleware wraps what was added before: the last added is the outermost
    app.add_middleware(GuardMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=config.max_body_bytes)
    app.add_middleware(SecurityMiddleware, api_key=config.api_key, cors_origins=config.cors_origins,
                       hosts=config.answered_hosts)
    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware
        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["*"],
                           allow_headers=["Authorization", "X-API-Key", "Content-Type"],
                           expose_headers=["X-Seed", "X-Labels", "Retry-After"])
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)

    app.include_router(routes_core.router)
    edit_routes = _optional("routes_edit")
    if edit_routes is not None:
        app.include_router(edit_routes.router)
    _add_page(app)
    _limit_schema(app, config, registry.names)
    return app


def _start(app: FastAPI) -> None:
    """The worker threads, batchers and job store: made with the app (so that it also answers
    without a lifespan, as TestClient outside a `with` block runs it), and made again when a
    lifespan starts after an earlier one stopped them (test clients run one per `with` block)."""
    state = app.state
    state.executor = ThreadPoolExecutor(max_workers=state.config.workers, thread_name_prefix="genforge-model")
    state.batchers = routes_core.build_batchers(app)
    state.jobs = _job_store(state.config, state.executor)
    state.shutting_down = False


@asynccontextmanager
async def lifespan(app: FastAPI):
    if app.state.shutting_down:
        _start(app)
    yield
    # uvicorn has stopped taking requests and (timeout_graceful_shutdown) let running ones finish
    state = app.state
    state.shutting_down = True
    for batcher in state.batchers.values():
        await batcher.aclose()
    if state.jobs is not None:  # its running jobs see their cancel flag and stop between steps
        stopped = state.jobs.shutdown()
        if inspect.isawaitable(stopped):
            await stopped
    state.executor.shutdown(wait=False, cancel_futures=True)
    waited = asyncio.to_thread(state.executor.shutdown, wait=True)
    try:
        await asyncio.wait_for(waited, SHUTDOWN_WAIT_S)
    except TimeoutError:
        log.warning("model work still running after %d s at shutdown", SHUTDOWN_WAIT_S)


def _optional(module: str):
    """serve.<module> if it is there (the edit routes and jobs are separate parts), else None."""
    try:
        return import_module(f"{__package__}.{module}")
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.{module}":
            raise  # the module is there but something it imports is not: a real error
        return None


def _job_store(config: ServeConfig, executor):
    jobs = _optional("jobs")
    return None if jobs is None else jobs.JobStore(config.job_ttl_s, config.max_jobs, executor)


# --- one error body for every failure ---------------------------------------------------------------
def _error(status: int, message: str, field: str | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, field), status, headers=headers)


def validation_message(errors: list[dict]) -> tuple[str, str | None]:
    """("n: Input should be less than or equal to 256", "n") from pydantic's errors: the first
    problem, named by its field (the part of `loc` after body/query/path), and how many more."""
    first = errors[0]
    loc = [str(part) for part in first.get("loc", ())]
    # ("body", "n") -> n; ("query", "start") -> start; ("body", 12) (bad JSON at 12) or ("body",) -> body
    names = [part for part in loc[1:] if not part.isdigit()] or loc[:1]
    field = names[0] if names else None
    message = f"{field}: {first.get('msg', 'invalid')}" if field else first.get("msg", "invalid request")
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return message, field


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return _error(exc.status, exc.message, exc.field, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, exc: RequestValidationError):
        return _error(422, *validation_message(exc.errors() or [{"msg": "invalid request"}]))

    @app.exception_handler(GenforgeError)
    async def refused(request, exc: GenforgeError):
        return _error(422, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        message = {404: f"no such route: {request.url.path} (the API is under /v1; see /openapi.json)",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return _error(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def bug(request, exc: Exception):  # reached only from outside GuardMiddleware (a middleware's bug)
        log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, INTERNAL)


class GuardMiddleware:
    """Any exception a route lets escape: logged with its traceback, answered with a fixed 500.
    Innermost of the middleware, so the others (metrics) see an ordinary answer."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        watched = WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        except Exception:
            log.exception("unexpected error answering %s %s", scope.get("method"), scope.get("path"))
            if watched.started:  # the status is sent already: all that is left is to cut the answer short
                raise
            await _error(500, INTERNAL)(scope, receive, send)


class MetricsMiddleware:
    """Counts each answer and its latency under its route's template (bounded labels)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics):
        self.app, self.metrics = app, metrics
        self.templates: list[tuple] | None = None  # (regex, template) of the schema's paths, made at first use

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, watched = time.perf_counter(), WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        finally:  # an exception that escapes is answered 500 by Starlette: counted as that
            self.metrics.observe_request(self.route_template(scope), scope["method"], watched.status,
                                         time.perf_counter() - started)

    def route_template(self, scope: Scope) -> str:
        """The template of the route a request went to, or would have gone to (a request refused
        before routing, a 401, still counts under its route); UNMATCHED when none matches."""
        route = getattr(scope.get("route"), "path", None)
        if route:
            return route
        if self.templates is None:
            paths = scope["app"].openapi().get("paths", {})  # the public list of the API's routes
            self.templates = [(compile_path(path)[0], path) for path in paths]
        return next((path for regex, path in self.templates if regex.match(scope["path"])), UNMATCHED)


# --- the page and the schema ---------------------------------------------------------------------
def _add_page(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    async def page():
        index = STATIC / "index.html"
        return FileResponse(index) if index.is_file() else HTMLResponse(PLACEHOLDER)

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")


def _limit_schema(app: FastAPI, config: ServeConfig, names: list[str]) -> None:
    """The OpenAPI schema with this server's limits and loaded models, and its key scheme where a
    key is needed."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = routes_core.apply_limits(build(), config, names)
            if config.api_key:
                schema.setdefault("components", {})["securitySchemes"] = {
                    "bearer": {"type": "http", "scheme": "bearer"},
                    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
                for path, operations in schema.get("paths", {}).items():
                    if needs_key(path):
                        for operation in operations.values():
                            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


__all__ = ["create_app", "validation_message"]
