"""Micro-batching: concurrent requests to one model gathered into one forward pass.

A forward pass of 64 images costs little more than one of a single image on a CPU, so a server
that ran each request alone behind a lock would waste most of its time. A `MicroBatcher` keeps
the requests that arrive for one model and kind (sample, detect) in a bounded queue; one worker
takes from it at most `max_batch` images' worth of requests, waiting at most `max_wait_ms` after
the oldest arrived for others to join, and hands them to `run_batch` in ONE call on the executor.
While that batch runs, the next one gathers, so throughput rises with the number of clients.

At most one batch per batcher is in flight: a second one would only wait in the executor's
unbounded queue, where no limit (and no 429) could reach it. A request larger than `max_batch`
runs alone. A full queue answers 429 with Retry-After at once rather than making callers wait
without bound.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from .errors import ApiError
from .metrics import ServeMetrics

log = logging.getLogger(__name__)


@dataclass
class _Waiting:
    item: Any
    size: int  # images this request adds to a batch
    future: asyncio.Future
    arrived: float


@dataclass
class _LoopState:
    """What a batcher holds for one event loop (a server has one; TestClient without a `with`
    block starts a loop per request, and asyncio objects must not cross loops)."""
    queue: deque = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task | None = None


class MicroBatcher:
    """Gathers `submit(item, size)` calls into batches for `run_batch(items) -> results`.

    `run_batch` runs on `executor` with a list of items and returns one result per item, in order;
    a result that is an Exception is raised to that request alone (one bad request does not fail
    the others gathered with it). An exception raised by `run_batch` itself fails every request
    of the batch."""

    def __init__(self, run_batch: Callable[[list], Sequence], max_batch: int, max_wait_ms: float,
                 queue_size: int, executor: Executor, metrics: ServeMetrics | None = None, name: str = "batch"):
        self.run_batch = run_batch
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.queue_size = queue_size
        self.executor = executor
        self.metrics = metrics
        self.name = name
        self._states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = weakref.WeakKeyDictionary()
        self._closed = False

    # --- the caller's side ---------------------------------------------------------------------
    async def submit(self, item: Any, size: int = 1) -> Any:
        """The result of `item` (size: its number of images), computed in a batch with whatever
        other requests arrive within max_wait_ms. ApiError 429 when the queue is full."""
        if self._closed:
            raise ApiError(503, "the server is shutting down")
        loop = asyncio.get_running_loop()
        state = self._state(loop)
        if len(state.queue) >= self.queue_size:
            if self.metrics:
                self.metrics.rejected.labels(self.name).inc()
            raise ApiError(429, f"too many requests waiting for {self.name} ({self.queue_size}); try again shortly",
                           headers={"Retry-After": "1"})
        waiting = _Waiting(item, max(1, size), loop.create_future(), loop.time())
        state.queue.append(waiting)
        self._gauge(state)
        state.wake.set()
        return await waiting.future

    def depth(self) -> int:
        """Requests waiting, over every loop."""
        return sum(len(s.queue) for s in list(self._states.values()))

    async def aclose(self) -> None:
        """Stops the workers; requests still waiting get 503 (a graceful shutdown drains them first)."""
        self._closed = True
        current = asyncio.get_running_loop()
        for loop, state in list(self._states.items()):
            for waiting in state.queue:
                if not waiting.future.done():
                    _call_on(loop, waiting.future.set_exception, ApiError(503, "the server is shutting down"))
            state.queue.clear()
            if state.worker is not None:
                _call_on(loop, state.worker.cancel)
                if loop is current:
                    await asyncio.gather(state.worker, return_exceptions=True)
        self._states.clear()

    # --- the worker's side ---------------------------------------------------------------------
    def _state(self, loop: asyncio.AbstractEventLoop) -> _LoopState:
        state = self._states.get(loop)
        if state is None:
            state = self._states[loop] = _LoopState()
        if state.worker is None or state.worker.done():
            state.worker = loop.create_task(self._work(loop, state), name=f"batcher {self.name}")
        return state

    async def _work(self, loop: asyncio.AbstractEventLoop, state: _LoopState) -> None:
        while True:
            await state.wake.wait()
            state.wake.clear()
            while state.queue:
                try:
                    await self._gather(loop, state)
                    batch = self._take(state)
                    if batch:
                        await self._run(loop, batch)
                    self._gauge(state)
                except Exception:  # a bug in the batcher itself: keep serving the others
                    log.exception("batcher %s", self.name)

    async def _gather(self, loop: asyncio.AbstractEventLoop, state: _LoopState) -> None:
        """Waits until max_batch images are queued or the oldest request has waited max_wait."""
        deadline = state.queue[0].arrived + self.max_wait
        while sum(w.size for w in state.queue) < self.max_batch and (left := deadline - loop.time()) > 0:
            state.wake.clear()
            try:
                await asyncio.wait_for(state.wake.wait(), left)
            except TimeoutError:
                break
            if not state.queue:
                return

    def _take(self, state: _LoopState) -> list[_Waiting]:
        """The oldest requests that fit in max_batch images (always at least one); those whose
        caller has gone (a closed connection cancels its future) are dropped."""
        batch, images = [], 0
        while state.queue:
            waiting = state.queue[0]
            if waiting.future.done():
                state.queue.popleft()
                continue
            if batch and images + waiting.size > self.max_batch:
                break
            batch.append(state.queue.popleft())
            images += waiting.size
        return batch

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Waiting]) -> None:
        if self.metrics:
            self.metrics.batch_images.labels(self.name).observe(sum(w.size for w in batch))
            self.metrics.batch_requests.labels(self.name).observe(len(batch))
        try:
            results = await loop.run_in_executor(self.executor, self.run_batch, [w.item for w in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"{self.name}: run_batch gave {len(results)} results for {len(batch)} items")
        except asyncio.CancelledError:
            for w in batch:
                if not w.future.done():
                    w.future.set_exception(ApiError(503, "the server is shutting down"))
            raise
        except Exception as e:  # every request of the batch gets it (a bug: app.py logs it, answers 500)
            results = [e] * len(batch)
        for w, result in zip(batch, results):
            if w.future.done():
                continue
            if isinstance(result, BaseException):
                w.future.set_exception(result)
            else:
                w.future.set_result(result)

    def _gauge(self, state: _LoopState) -> None:
        if self.metrics:
            self.metrics.queue_depth.labels(self.name).set(self.depth())


def _call_on(loop: asyncio.AbstractEventLoop, fn, *args) -> None:
    """Calls fn on `loop` (asyncio objects are not thread-safe): at once if it is this thread's
    running loop, else scheduled on it (skipped if that loop has closed)."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if loop is running:
        fn(*args)
    elif not loop.is_closed():
        loop.call_soon_threadsafe(fn, *args)


__all__ = ["MicroBatcher"]
