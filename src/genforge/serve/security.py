"""Who may call the server: the API key, the refusal of requests sent by other sites' pages
(CSRF), and CORS for the origins the operator names.

A browser lets any web page send a POST to 127.0.0.1 (a form, or fetch without reading the
answer): with no key, every model on the machine would run for whoever's page is open. Browsers
say where a request comes from (`Origin`, `Sec-Fetch-Site`), so a request that is not a plain
read (GET, HEAD, OPTIONS) and comes from a page of another origin is refused with 403, unless
that origin is in `cors_origins`. The server's own page is same-origin and passes; programs
(curl, Python) send no Origin and pass (they need the key when one is set).

With a key, every /v1 route and /metrics need `Authorization: Bearer KEY` or `X-API-Key: KEY`,
compared in constant time; the page, its files, /healthz, /readyz, /docs and /openapi.json stay
open so that a person can load the page and type the key in.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body

SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
PROTECTED = ("/v1/", "/metrics")  # path prefixes that need the key when one is set
# On every answer: no MIME sniffing (an uploaded file's bytes are never run as a page) and no
# framing by other sites (the page cannot be clickjacked under another site's buttons).
HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}


def needs_key(path: str) -> bool:
    return path == "/v1" or any(path == p or path.startswith(p) for p in PROTECTED)


def given_key(headers: Headers) -> str | None:
    """The key a request carries, from `Authorization: Bearer KEY` or `X-API-Key: KEY`."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return headers.get("x-api-key")


def key_matches(given: str | None, key: str) -> bool:
    # compare_digest takes the same time wherever the first difference is: no timing oracle
    return given is not None and hmac.compare_digest(given.encode(), key.encode())


def foreign_origin(headers: Headers, allowed: list[str]) -> str | None:
    """The other origin a request comes from (a description for the message), or None when it
    comes from this server's own page, from an allowed origin, or from no page at all."""
    origin = headers.get("origin")
    if origin is not None:
        if origin.rstrip("/") in allowed:
            return None
        if origin != "null" and urlsplit(origin).netloc == headers.get("host", ""):
            return None
        return origin
    site = headers.get("sec-fetch-site")
    if site in ("cross-site", "same-site"):  # same-site is another port or sub-domain: another origin
        return f"a {site} page"
    return None


def host_name(headers: Headers) -> str:
    """The name a request is addressed to, from its Host header, without the port ("" if none)."""
    try:
        return urlsplit("//" + headers.get("host", "")).hostname or ""
    except ValueError:  # a malformed header such as "[::1"
        return ""


class SecurityMiddleware:
    """403 for a request addressed to a name this server does not answer to (DNS rebinding), and
    for a state-changing request from another origin's page; 401 without the key."""

    def __init__(self, app: ASGIApp, api_key: str | None, cors_origins: list[str],
                 hosts: tuple[str, ...] | None = None):
        self.app, self.api_key, self.cors_origins, self.hosts = app, api_key, list(cors_origins), hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        if self.hosts is not None and host_name(headers) not in self.hosts:
            message = (f"refused a request addressed to {host_name(headers) or 'no host'!r}: without an API key this "
                       f"server answers only requests to {', '.join(self.hosts)} (start it with --allowed-host NAME "
                       "to answer another name)")
            body = error_body(403, message, "host")
            return await JSONResponse(body, 403, headers=HEADERS)(scope, receive, send)
        if scope["method"] not in SAFE_METHODS:
            origin = foreign_origin(headers, self.cors_origins)
            if origin is not None:
                message = (f"refused a {scope['method']} request from {origin}: this server answers its own page "
                           "and programs (start it with --cors-origin ORIGIN to let another site's page call it)")
                return await JSONResponse(error_body(403, message), 403, headers=HEADERS)(scope, receive, send)
        if self.api_key and needs_key(scope["path"]) and not key_matches(given_key(headers), self.api_key):
            given = given_key(headers) is not None
            message = ("wrong API key" if given else "this server needs an API key: send Authorization: Bearer KEY "
                       "or X-API-Key: KEY")
            return await JSONResponse(error_body(401, message), 401,
                                      headers={"WWW-Authenticate": "Bearer", **HEADERS})(scope, receive, send)

        async def guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], *((k.lower().encode(), v.encode())
                                                              for k, v in HEADERS.items())]
            await send(message)

        await self.app(scope, receive, guarded)


__all__ = ["SecurityMiddleware", "foreign_origin", "given_key", "host_name", "key_matches", "needs_key"]
