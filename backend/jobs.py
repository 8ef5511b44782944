"""One worker thread per device that runs model work in order, and the jobs it tracks.

HTTP handlers only enqueue and read job state, so they never wait on the
model (a synchronous /inpaint waits on its own job's event, nothing else).
Running two models at once on one GPU would only thrash its memory.
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

from backend.engines.base import Cancelled, Progress

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINAL = {DONE, FAILED, CANCELLED}


@dataclass
class JobError:
    code: str
    detail: str
    status: int


@dataclass
class Job:
    id: str
    work: Callable[[Progress], Any]
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
    detail, HTTP status) so failures reach clients in plain words.
    """

    def __init__(self, classify: Callable[[Exception], JobError], keep_seconds: float = 3600, keep_max: int = 256):
        self._classify = classify
        self._queue: queue.Queue[Job] = queue.Queue()
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._keep_seconds = keep_seconds
        self._keep_max = keep_max
        self._counter = itertools.count(1)
        self._thread = threading.Thread(target=self._loop, name="inpaint-worker", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[Progress], Any]) -> Job:
        job = Job(id=f"{next(self._counter)}-{secrets.token_hex(6)}", work=work)
        with self._lock:
            self._prune()
            self._jobs[job.id] = job
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is None:
            return None
        job.cancel_event.set()
        with self._lock:
            if job.state == QUEUED:  # never started: final right away
                self._finish(job, CANCELLED, "cancelled before it started")
        return job

    def pending(self) -> int:
        return self._queue.qsize()

    def _finish(self, job: Job, state: str, message: str) -> None:
        job.state, job.message, job.finished = state, message, time.time()
        if state == DONE:
            job.progress = 1.0
        job.work = None  # drop the request's pixels
        job.done.set()

    def _prune(self) -> None:
        now = time.time()
        finished = sorted((j for j in self._jobs.values() if j.state in FINAL), key=lambda j: j.finished or 0)
        excess = len(self._jobs) - self._keep_max
        for j in finished:
            if excess > 0 or now - (j.finished or now) > self._keep_seconds:
                del self._jobs[j.id]
                excess -= 1

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
            progress = Progress(lambda f, m, j=job: self._report(j, f, m), job.cancel_event)
            try:
                result = job.work(progress)
            except Cancelled:
                with self._lock:
                    self._finish(job, CANCELLED, "cancelled")
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
