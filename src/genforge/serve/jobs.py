"""Long work as jobs: submit answers at once with an id, the work runs on the worker threads, and
its progress, result or error is read by polling or as server-sent events; a job can be cancelled.

Nothing grows without bound. A finished job (done, failed or cancelled) is kept `ttl_s` seconds,
then forgotten (checked on every access and by a sweep every few seconds); at most `max_jobs` are
kept at once, and when that many are there a new one evicts the oldest finished one, or, if all
are unfinished, is refused with 429 and Retry-After. At most `concurrency` jobs run at once
(default 1) and the rest wait their turn, so jobs never take every worker thread from the quick
requests (sample, detect) that share them.

The work is a function of a `JobContext`: it reports `progress(fraction, message)` and asks
`cancelled()` between its steps (an edit's latent search does so after every step; serve/editing.py),
raising `JobCancelled` to stop. A failed job keeps one line of error text, never a traceback.

    job = store.submit(lambda ctx: run_edit(..., progress=ctx.progress, cancelled=ctx.cancelled))
    store.view(job.id)   # {"id", "state", "progress", "message", "result", "error", "created", ...}
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from ..errors import GenforgeError
from .errors import ApiError

log = logging.getLogger("genforge.serve")

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
SWEEP_S = 5.0  # at most this long between sweeps of expired jobs
EVENT_POLL_S = 0.1  # how often an event stream looks for news
HEARTBEAT_S = 15.0  # an event stream with no news sends a comment this often (proxies drop quiet streams)
RETRY_AFTER_S = 5  # what a refused submit is told to wait
INTERNAL = "internal error (logged on the server)"


class JobCancelled(Exception):
    """Raised inside a job's work when its cancel flag is set: the job ends as cancelled."""


@dataclass
class Job:
    """One unit of long work and what is known of it. Times are Unix seconds (UTC)."""
    id: str
    work: Callable[[JobContext], Any]
    state: str = "queued"
    progress: float = 0.0
    message: str = "waiting for a worker"
    result: Any = None
    error: str | None = None
    created: float = 0.0
    started: float | None = None
    finished: float | None = None
    expires_at: float | None = None  # set when it finishes: finished + ttl
    cancel_requested: bool = False
    version: int = 0  # grows with every change: an event stream sends what changed
    done_event: threading.Event = field(default_factory=threading.Event)

    def view(self) -> dict:
        """The job as the API shows it."""
        return {"id": self.id, "state": self.state, "progress": round(self.progress, 4), "message": self.message,
                "result": self.result, "error": self.error, "created": self.created, "started": self.started,
                "finished": self.finished, "expires_at": self.expires_at}


class JobContext:
    """What a job's work sees of its job: report progress, and learn whether it was cancelled."""

    def __init__(self, store: JobStore, job: Job):
        self._store, self._job = store, job

    def progress(self, fraction: float, message: str | None = None) -> None:
        """Reports progress in [0, 1] (never going back) and, optionally, what is being done."""
        self._store._update(self._job, fraction, message)

    def cancelled(self) -> bool:
        return self._job.cancel_requested

    def check(self) -> None:
        """Raises JobCancelled if the job was cancelled."""
        if self._job.cancel_requested:
            raise JobCancelled


class JobStore:
    """The server's jobs: submit, read, cancel, stream; bounded in count and in time."""

    def __init__(self, ttl_s: float, max_jobs: int, executor: Executor, concurrency: int = 1,
                 clock: Callable[[], float] = time.time):
        if ttl_s <= 0 or max_jobs < 1 or concurrency < 1:
            raise ValueError("ttl_s must be positive, max_jobs and concurrency at least 1")
        self.ttl_s, self.max_jobs, self.executor, self.concurrency = ttl_s, max_jobs, executor, concurrency
        self.clock = clock
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._closed = False

    # --- submitting and running ------------------------------------------------------------------
    def submit(self, work: Callable[[JobContext], Any]) -> Job:
        """A new job running `work(context)` when a slot is free; its return value (JSON-ready) is
        the result. ApiError 429 with Retry-After when `max_jobs` unfinished jobs are kept already,
        503 once the store has shut down."""
        with self._lock:
            if self._closed:
                raise ApiError(503, "the server is shutting down; no new jobs")
            self._drop_expired()
            if len(self._jobs) >= self.max_jobs:
                self._evict_finished()
            if len(self._jobs) >= self.max_jobs:
                raise ApiError(429, f"{self.max_jobs} jobs are unfinished, the server's limit (--max-jobs); "
                               "retry when one has ended", headers={"Retry-After": str(RETRY_AFTER_S)})
            job = Job(secrets.token_urlsafe(16), work, created=self.clock())
            self._jobs[job.id] = job
            self._start_sweeper()
            self._start_waiting()
        return job

    def _start_waiting(self) -> None:
        """Starts queued jobs, oldest first, while fewer than `concurrency` run (lock held)."""
        running = sum(job.state == "running" for job in self._jobs.values())
        for job in sorted(self._jobs.values(), key=lambda j: j.created):
            if running >= self.concurrency:
                return
            if job.state == "queued":
                job.state, job.started, job.message = "running", self.clock(), "started"
                job.version += 1
                running += 1
                try:
                    self.executor.submit(self._run, job)
                except RuntimeError:  # the executor has shut down
                    self._finish(job, "failed", error="the server is shutting down")
                    running -= 1

    def _run(self, job: Job) -> None:
        """A job's work on a worker thread, and its end: done, failed or cancelled."""
        try:
            if job.cancel_requested:
                raise JobCancelled
            result = job.work(JobContext(self, job))
            if job.cancel_requested:
                raise JobCancelled
        except JobCancelled:
            outcome = ("cancelled", None, None)
        except ApiError as e:
            outcome = ("failed", None, e.message)
        except GenforgeError as e:
            outcome = ("failed", None, str(e))
        except Exception:
            log.exception("job %s failed", job.id)
            outcome = ("failed", None, INTERNAL)
        else:
            outcome = ("done", result, None)
        with self._lock:
            state, result, error = outcome
            self._finish(job, state, result, error)
            self._start_waiting()

    def _finish(self, job: Job, state: str, result: Any = None, error: str | None = None) -> None:
        """Ends a job (lock held): its state, result or error, and when it will be forgotten."""
        job.state, job.result, job.error = state, result, error
        job.finished = self.clock()
        job.expires_at = job.finished + self.ttl_s
        job.message = {"done": "done", "failed": "failed", "cancelled": "cancelled"}[state]
        if state == "done":
            job.progress = 1.0
        job.version += 1
        job.work = None  # the work's closure may hold images: let them go
        job.done_event.set()

    def _update(self, job: Job, fraction: float, message: str | None) -> None:
        with self._lock:
            if job.state != "running":
                return
            job.progress = min(1.0, max(job.progress, float(fraction)))
            if message is not None:
                job.message = message
            job.version += 1

    # --- reading, cancelling, expiring -------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        """The job `job_id`; ApiError 404 when there is none (never was, expired, or evicted)."""
        with self._lock:
            return self._kept(job_id)

    def view(self, job_id: str) -> dict:
        """The API's view of job `job_id` (404 as `get`)."""
        with self._lock:
            return self._kept(job_id).view()

    def _kept(self, job_id: str) -> Job:
        """The job, after forgetting expired ones (lock held); ApiError 404 when it is not kept."""
        self._drop_expired()
        job = self._jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id!r}: it never was, or it ended more than {self.ttl_s:g} s ago "
                           "(--job-ttl-s) and was forgotten", "job_id")
        return job

    def cancel(self, job_id: str) -> dict:
        """Cancels a job: a queued one at once, a running one at its next check (its state says
        "running" with message "cancelling" until then). A finished job is forgotten. Answers
        the job's view."""
        with self._lock:
            job = self._kept(job_id)
            if job.state == "queued":
                job.cancel_requested = True
                self._finish(job, "cancelled")
            elif job.state == "running":
                if not job.cancel_requested:
                    job.cancel_requested, job.message = True, "cancelling"
                    job.version += 1
            else:
                del self._jobs[job_id]
            return job.view()

    def __len__(self) -> int:
        with self._lock:
            self._drop_expired()
            return len(self._jobs)

    def counts(self) -> dict[str, int]:
        """How many jobs are kept in each state."""
        with self._lock:
            self._drop_expired()
            return {state: sum(job.state == state for job in self._jobs.values()) for state in STATES}

    def _drop_expired(self) -> None:
        now = self.clock()
        for job_id in [i for i, job in self._jobs.items() if job.expires_at is not None and job.expires_at <= now]:
            del self._jobs[job_id]

    def _evict_finished(self) -> None:
        """Forgets the finished job that ended first (lock held), if there is one."""
        finished = [job for job in self._jobs.values() if job.state in FINISHED]
        if finished:
            del self._jobs[min(finished, key=lambda j: j.finished).id]

    def sweep(self) -> None:
        """Forgets every expired job."""
        with self._lock:
            self._drop_expired()

    def _start_sweeper(self) -> None:
        """A daemon thread that sweeps every few seconds, started with the first job (lock held)."""
        if self._sweeper is None:
            interval = min(SWEEP_S, self.ttl_s)

            def sweep_until_stopped() -> None:
                while not self._stop.wait(interval):
                    self.sweep()
            self._sweeper = threading.Thread(target=sweep_until_stopped, name="genforge-job-sweeper", daemon=True)
            self._sweeper.start()

    def shutdown(self) -> None:
        """Refuses new jobs, cancels the queued ones and asks the running ones to stop (they do at
        their next check), and stops the sweeper."""
        with self._lock:
            self._closed = True
            for job in self._jobs.values():
                if job.state == "queued":
                    job.cancel_requested = True
                    self._finish(job, "cancelled")
                elif job.state == "running":
                    job.cancel_requested, job.message = True, "cancelling"
                    job.version += 1
        self._stop.set()

    # --- server-sent events ------------------------------------------------------------------------
    async def events(self, job_id: str) -> AsyncIterator[str]:
        """The job as server-sent events: an `event: progress` with the job's view whenever it
        changes, then one final event named by its end state (done, failed, cancelled) holding the
        whole view, result included; an `event: expired` if it is forgotten before the stream sees
        its end. ApiError 404 (raised at once, before any event) for an unknown job."""
        job = self.get(job_id)  # 404 before the stream starts
        seen, quiet = -1, 0.0
        while True:
            with self._lock:
                self._drop_expired()
                kept = self._jobs.get(job_id) is job
                version, view = job.version, job.view()
            if not kept and view["state"] not in FINISHED:
                yield _event("expired", {"id": job_id})
                return
            if view["state"] in FINISHED:
                yield _event(view["state"], view)
                return
            if version != seen:
                seen, quiet = version, 0.0
                yield _event("progress", {k: view[k] for k in ("id", "state", "progress", "message")})
            elif quiet >= HEARTBEAT_S:
                quiet = 0.0
                yield ": still working\n\n"
            await asyncio.sleep(EVENT_POLL_S)
            quiet += EVENT_POLL_S


def _event(name: str, data: dict) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


__all__ = ["FINISHED", "Job", "JobCancelled", "JobContext", "JobStore", "STATES"]
