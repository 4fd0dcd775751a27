"""Every setting of `genforge serve`: where it listens, who may call it, and the limits that keep
it answering under load and bad input. One dataclass, checked like every genforge config
(config_check.py), so `genforge serve --max-batch 0` and `ServeConfig(max_batch=0)` meet the
same one-line refusal."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import re

from ..config_check import Checked, Device, Number, Refused, Rule, Whole
from ..errors import ConfigError

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9.\-]*[a-z0-9])?$|^\[?[0-9a-f:.]+\]?$")  # a name or an IP, no port
ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")  # scheme://host[:port], nothing after it


class Text(Rule):
    accepts = "text"

    def parse(self, value):
        if not isinstance(value, str):
            raise Refused
        return value


class HostNames(Rule):
    """Host names (`genforge.local`, `my-box`) as a list or a comma text."""
    accepts = "a comma list of host names such as genforge.local ('' for none)"

    def parse(self, value):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(h, str) for h in items):
            raise Refused
        names = [h.strip().lower() for h in items if h.strip()]
        bad = [h for h in names if not HOST_NAME.match(h)]
        if bad:
            raise Refused(f"not a host name: {bad[0]!r}")
        return names


class Origins(Rule):
    """Web origins (`https://example.org`, `http://localhost:3000`) as a list or a comma text."""
    accepts = "a comma list of origins such as https://example.org ('' for none)"

    def parse(self, value):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(o, str) for o in items):
            raise Refused
        origins = [o.strip().rstrip("/") for o in items if o.strip()]
        bad = [o for o in origins if not ORIGIN.match(o)]
        if bad:
            raise Refused(f"not an origin: {bad[0]!r}")
        return origins


@dataclass
class ServeConfig(Checked):
    label: ClassVar[str] = "serve config"
    host: str = "127.0.0.1"  # localhost only unless told otherwise; any other host needs api_key
    port: int = 8000
    api_key: str | None = None  # when set, /v1 and /metrics need it (Authorization: Bearer or X-API-Key)
    device: str = "cpu"
    max_batch: int = 64  # images gathered into one forward pass
    max_wait_ms: float = 5.0  # how long a request waits for others to join its batch
    queue_size: int = 64  # requests waiting for a model; beyond it: 429 with Retry-After
    max_body_mb: float = 8.0  # request bodies larger than this: 413
    max_pixels: int = 4_000_000  # an uploaded image larger than this (read from its header): 413
    max_images: int = 256  # images per request (sample n, uploaded files)
    job_ttl_s: float = 600.0  # finished jobs are forgotten this long after they end
    max_jobs: int = 64  # jobs kept at once (queued, running or finished); beyond it: 429
    workers: int = 2  # threads that run the models (the event loop never does)
    cors_origins: list[str] = field(default_factory=list)  # other sites' pages allowed to call (CORS off if empty)
    allowed_hosts: list[str] = field(default_factory=list)  # names besides localhost a keyless server answers to

    RULES: ClassVar[dict[str, Rule]] = {
        "host": Text(), "port": Whole(min=0, max=65535), "api_key": Text(optional=True, none_means="no key"),
        "device": Device(), "max_batch": Whole(min=1), "max_wait_ms": Number(ge=0, le=1000),
        "queue_size": Whole(min=1), "max_body_mb": Number(gt=0), "max_pixels": Whole(min=1),
        "max_images": Whole(min=1), "job_ttl_s": Number(gt=0), "max_jobs": Whole(min=1),
        "workers": Whole(min=1), "cors_origins": Origins(), "allowed_hosts": HostNames(),
    }

    def cross_check(self) -> None:
        if self.host not in LOCAL_HOSTS and not self.api_key:
            raise self.refuse("host", "127.0.0.1 unless an API key is set (--api-key or GENFORGE_API_KEY): "
                              "a server reachable from other machines must not answer everyone")
        if self.api_key is not None and len(self.api_key) < 16:
            # not self.refuse(): that echoes the value, and a key must not reach a log
            raise ConfigError(f"{self.label}: api_key must be at least 16 characters, got {len(self.api_key)} "
                              "(make one: python -c \"import secrets; print(secrets.token_urlsafe(24))\")")

    @property
    def answered_hosts(self) -> tuple[str, ...] | None:
        """The names a request's Host header may carry, or None for any. A server without a key
        answers only requests addressed to this machine by a local name: a web page whose domain
        is made to resolve to 127.0.0.1 (DNS rebinding) sends its own domain as the Host and is
        refused. With a key, whoever holds it may call by any name."""
        if self.api_key:
            return None
        return (*LOCAL_HOSTS, *(h.strip("[]") for h in self.allowed_hosts))

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


__all__ = ["LOCAL_HOSTS", "ServeConfig"]
