"""The one shape of every error the server answers, and the exception routes raise to give it.

    {"error": {"status": 422, "message": "n must be at most 256, got 1000", "field": "n"}}

The message is written for the person calling the API, like the CLI's one line; `field` names the
request field at fault where there is one. Nothing else (no traceback, no exception name) leaves
the server: app.py turns unexpected exceptions into a 500 with a fixed message and logs them."""

from __future__ import annotations

from pydantic import BaseModel


class ApiError(Exception):
    """Raised by a route: answered as `status` with this message (and field, and headers such as
    Retry-After)."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers


class ErrorDetail(BaseModel):
    status: int
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer (declared in the OpenAPI schema of every route)."""
    error: ErrorDetail


def error_body(status: int, message: str, field: str | None = None) -> dict:
    return {"error": {"status": status, "message": message, "field": field}}


__all__ = ["ApiError", "ErrorBody", "ErrorDetail", "error_body"]
