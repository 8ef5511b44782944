"""One worker thread per device that runs model work in order, and the jobs it tracks.

HTTP handlers only enqueue and read job state, so they never wait on the
model (a synchronous /inpaint waits on its own job's event, nothing else).
Running two models at once on one GPU would only thrash its memory.

Memory stays bounded: the pixels of unfinished jobs are counted against a
limit, and finished jobs are kept (for GET .../result) only for a while, up
to a count and a size of results. A synchronous call's job is never kept:
its result goes out in the response that waited for it.
"""
from __future__ import annotations

import itertools
import queue
import secrets
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from backend.engines.base import Cancelled, OutOfTime, Progress

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINAL = {DONE, FAILED, CANCELLED}
RETRY_AFTER_S = 5  # what a refused client is told to wait: about one small fill


@dataclass
class JobError:
    code: str
    detail: str
    status: int
    retry_after: int | None = None  # seconds, sent as Retry-After


class QueueFull(Exception):
    """Queued and running jobs already hold as many pixels as the server takes on."""


@dataclass
class Job:
    id: str
    work: Callable[[Progress], Any]
    pixels: int = 0  # image pixels the job holds until it finishes: what the queue limit counts
    kept: bool = True  # False: a synchronous call's job, never in the store
    state: str = QUEUED
    progress: float = 0.0
    message: str = "queued"
    created: float = field(default_factory=time.time)
    finished: float | None = None
    result: Any = None
    error: JobError | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)

    def as_dict(self) -> dict[str, Any]:
        d = {"id": self.id, "state": self.state, "progress": round(self.progress, 4), "message": self.message}
        if self.error is not None:
            d["error"] = {"error": self.error.code, "detail": self.error.detail}
        return d


class Worker:
    """Runs jobs one at a time on a daemon thread.

    `classify` turns an exception raised by a job into a JobError (code,
    detail, HTTP status) so failures reach clients in plain words; `size_of`
    gives the bytes a result holds. A job running longer than `budget_s`
    ends failed at its next progress call.
    """

    def __init__(self, classify: Callable[[Exception], JobError], keep_seconds: float = 3600, keep_max: int = 256,
                 keep_bytes: int = 2**30, max_pixels: int = 64_000_000, budget_s: float | None = None,
                 size_of: Callable[[Any], int] = lambda result: 0):
        self._classify = classify
        self._queue: queue.Queue[Job] = queue.Queue()
        self._jobs: dict[str, Job] = {}  # the store: async jobs, by id
        self._open: dict[str, Job] = {}  # every unfinished job
        self._lock = threading.Lock()
        self._keep_seconds, self._keep_max, self._keep_bytes = keep_seconds, keep_max, keep_bytes
        self._max_pixels, self._budget_s, self._size_of = max_pixels, budget_s, size_of
        self._counter = itertools.count(1)
        self._thread = threading.Thread(target=self._loop, name="inpaint-worker", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[Progress], Any], pixels: int = 0, keep: bool = True) -> Job:
        """Queue work; raises QueueFull when its pixels do not fit (a job alone always fits).

        keep=False: the caller waits on job.done and takes the result itself; the job is never stored.
        """
        job = Job(id=f"{next(self._counter)}-{secrets.token_hex(6)}", work=work, pixels=pixels, kept=keep)
        with self._lock:
            self._check_room(pixels)
            self._open[job.id] = job
            if keep:
                self._jobs[job.id] = job
                self._prune()
        self._queue.put(job)
        return job

    def check_room(self, pixels: int) -> None:
        """Raise QueueFull when a job of this many pixels would be refused now (to refuse before decoding it)."""
        with self._lock:
            self._check_room(pixels)

    def _check_room(self, pixels: int) -> None:
        held = sum(j.pixels for j in self._open.values())
        if self._open and held + pixels > self._max_pixels:
            raise QueueFull(f"the queue holds {held / 1e6:.1f} MP of images; this one ({pixels / 1e6:.1f} MP) would pass "
                            f"the server's limit of {self._max_pixels / 1e6:.1f} MP: retry when it has room")

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is not None:
            self.cancel_job(job)
        return job

    def cancel_job(self, job: Job) -> None:
        job.cancel_event.set()
        with self._lock:
            if job.state == QUEUED:  # never started: final right away
                self._finish(job, CANCELLED, "cancelled before it started")

    def pending(self) -> int:
        """Jobs waiting to start."""
        with self._lock:
            return sum(j.state == QUEUED for j in self._open.values())

    def retention(self) -> str:
        """The store's eviction rule, in words (the README says the same)."""
        hours = self._keep_seconds / 3600
        kept_for = "an hour" if hours == 1 else f"{hours:g} hours"
        return (f"finished jobs are kept for {kept_for}; past {self._keep_max} of them or "
                f"{self._keep_bytes / 2**30:g} GiB of results, the oldest go first")

    def _finish(self, job: Job, state: str, message: str) -> None:
        job.state, job.message, job.finished = state, message, time.time()
        if state == DONE:
            job.progress = 1.0
        job.work = None  # drop the request's pixels
        self._open.pop(job.id, None)
        job.done.set()
        if job.kept:
            self._prune()

    def _prune(self) -> None:
        now = time.time()
        finished = sorted((j for j in self._jobs.values() if j.state in FINAL), key=lambda j: j.finished or 0)
        count, size = len(finished), sum(self._result_bytes(j) for j in finished)
        for j in finished:
            if count <= self._keep_max and size <= self._keep_bytes and now - (j.finished or now) <= self._keep_seconds:
                break  # the rest are newer
            del self._jobs[j.id]
            count, size = count - 1, size - self._result_bytes(j)

    def _result_bytes(self, job: Job) -> int:
        return 0 if job.result is None else self._size_of(job.result)

    def _report(self, job: Job, fraction: float, message: str) -> None:
        job.progress = fraction
        if message:
            job.message = message

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            with self._lock:
                if job.state != QUEUED:
                    continue
                job.state, job.message = RUNNING, "running"
            deadline = None if self._budget_s is None else time.monotonic() + self._budget_s
            progress = Progress(lambda f, m, j=job: self._report(j, f, m), job.cancel_event, deadline=deadline)
            try:
                result = job.work(progress)
            except Cancelled:
                with self._lock:
                    self._finish(job, CANCELLED, "cancelled")
                continue
            except OutOfTime:
                job.error = JobError("time_budget_exceeded", f"the job ran past the server's time budget of {self._budget_s:g} s "
                                     "(serve --max-job-seconds): select less, or pick a faster model", 422)
                with self._lock:
                    self._finish(job, FAILED, job.error.detail)
                continue
            except Exception as e:  # noqa: BLE001 - every failure must reach the client, not kill the worker
                job.error = self._classify(e)
                if job.error.status >= 500:
                    traceback.print_exc()
                with self._lock:
                    self._finish(job, FAILED, job.error.detail)
                continue
            job.result = result
            with self._lock:
                self._finish(job, DONE, "done")
