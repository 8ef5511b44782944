"""The model worker: order, failures reported in words, cancelling a running job."""
from __future__ import annotations

import threading
import time

from backend.api.errors import classify
from backend.engines.region import MaskError
from backend.jobs import Worker


def test_running_job_is_cancelled_at_its_next_progress_call():
    worker = Worker(classify)
    started = threading.Event()

    def slow(progress):
        started.set()
        for i in range(1000):
            progress(i / 1000, "working")
            time.sleep(0.01)
        return "finished"

    job = worker.submit(slow)
    assert started.wait(5)
    worker.cancel(job.id)
    assert job.done.wait(5)
    assert job.state == "cancelled" and job.result is None


def test_failures_are_classified_and_the_worker_goes_on():
    worker = Worker(classify)

    def bad(progress):
        raise MaskError("empty_mask", "nothing selected")

    failed = worker.submit(bad)
    ok = worker.submit(lambda progress: 42)
    assert ok.done.wait(5) and failed.done.is_set()
    assert failed.state == "failed" and failed.error.status == 422 and failed.error.code == "empty_mask"
    assert ok.state == "done" and ok.result == 42 and ok.progress == 1.0


def test_jobs_run_one_at_a_time_in_order():
    worker = Worker(classify)
    running, overlap, order = [0], [], []
    lock = threading.Lock()

    def work(i):
        def run(progress):
            with lock:
                running[0] += 1
                overlap.append(running[0])
            time.sleep(0.01)
            order.append(i)
            with lock:
                running[0] -= 1
        return run

    jobs = [worker.submit(work(i)) for i in range(6)]
    assert all(j.done.wait(5) for j in jobs)
    assert max(overlap) == 1 and order == list(range(6))
