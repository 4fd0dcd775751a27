"""What `/metrics` shows, in the Prometheus text format: requests and latency per route, the
micro-batchers' queue depths and batch sizes, and error answers.

Each app gets its own CollectorRegistry rather than prometheus_client's global one, so two apps
in one process (the tests build many) never share or collide on a counter. Routes are labelled by
their template (`/v1/models/{name}/sample`), never by the path asked for: a label per distinct
path would let any caller grow the metrics without bound.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST

UNMATCHED = "unmatched"  # the route label of a request that matched no route (a 404, or refused before routing)
# Latency buckets from a cached 1-image sample (~1 ms) to a large batch of edits (~30 s).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServeMetrics:
    """The server's counters. Other parts add their own to `registry` (it is what /metrics renders)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("genforge_requests", "HTTP requests answered, by route template, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("genforge_request_seconds", "Time to answer a request, by route template",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("genforge_errors", "Error answers (status 400 and above), by route template and status",
                              ["route", "status"], registry=self.registry)
        self.queue_depth = Gauge("genforge_queue_depth", "Requests waiting for a batch, per batcher (model/kind)",
                                 ["batcher"], registry=self.registry)
        self.batch_images = Histogram("genforge_batch_images", "Images per forward pass, per batcher",
                                      ["batcher"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.batch_requests = Histogram("genforge_batch_requests", "Requests gathered into one forward pass, per "
                                        "batcher", ["batcher"], buckets=BATCH_BUCKETS, registry=self.registry)
        self.rejected = Counter("genforge_rejected", "Requests refused because a batcher's queue was full (429)",
                                ["batcher"], registry=self.registry)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if status >= 400:
            self.errors.labels(route, str(status)).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


__all__ = ["ServeMetrics", "UNMATCHED"]
