"""The model worker: order, failures reported in words, cancelling a running job."""
from __future__ import annotations

import threading
import time

import pytest

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


def test_a_job_past_its_time_budget_fails_at_its_next_progress_call():
    worker = Worker(classify, budget_s=0.2)

    def endless(progress):
        while True:
            progress(0.5, "working")
            time.sleep(0.01)

    job = worker.submit(endless)
    assert job.done.wait(5)
    assert job.state == "failed" and job.error.code == "time_budget_exceeded" and job.error.status == 422
    assert "0.2 s" in job.error.detail
    assert worker.submit(lambda progress: 1).done.wait(5)  # the budget is per job


def test_queued_pixels_are_limited_but_one_job_always_fits():
    from backend.jobs import QueueFull

    worker = Worker(classify, max_pixels=100)
    started, release = threading.Event(), threading.Event()
    blocker = worker.submit(lambda progress: started.set() or release.wait(5), pixels=60)
    assert started.wait(5)
    queued = worker.submit(lambda progress: 1, pixels=40)
    with pytest.raises(QueueFull, match="limit of 0.0 MP"):
        worker.submit(lambda progress: 1, pixels=1)
    worker.cancel_job(queued)  # a cancelled job frees its pixels at once
    assert worker.pending() == 0
    worker.submit(lambda progress: 1, pixels=40)
    release.set()
    assert blocker.done.wait(5)
    assert worker.submit(lambda progress: 1, pixels=10_000).done.wait(5)  # alone, a job fits whatever its size


def test_the_store_keeps_the_newest_finished_jobs_within_count_and_bytes():
    worker = Worker(classify, keep_max=3, keep_bytes=10, size_of=len)
    jobs = []
    for result in ("aaaa", "bbbb", "cccc"):
        jobs.append(worker.submit(lambda progress, r=result: r))
        assert jobs[-1].done.wait(5)
    assert worker.get(jobs[0].id) is None and worker.get(jobs[1].id) is jobs[1]  # 12 bytes > 10: the oldest went
    for _ in range(3):
        assert worker.submit(lambda progress: "").done.wait(5)
    assert worker.get(jobs[1].id) is None and worker.get(jobs[2].id) is None  # past 3 jobs
    unkept = worker.submit(lambda progress: "x", keep=False)
    assert unkept.done.wait(5) and unkept.result == "x" and worker.get(unkept.id) is None
    assert "past 3 of them" in worker.retention()
