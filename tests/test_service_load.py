"""Bounded work, memory and waiting: the server keeps answering while it is busy, full or left hanging.

The load tests run a server with a test engine ('sleep', tests/slow_cli.py) that takes exactly as long
as asked and checks for cancellation every 20 ms. Latency bounds here are generous; the measured
numbers come from benchmarks/service_load.py.
"""
from __future__ import annotations

import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from conftest import photo_like, png, rect_mask, start_server, stop_server

from backend.api.errors import classify
from backend.app import create_app
from backend.jobs import Worker
from backend.service import ServerConfig

SLOW = ("tests/slow_cli.py",)
QUEUE_PIXELS = 200_000  # beside a running 64x64 job, room for four 200x200 ones


def small(side: int = 64):
    return photo_like(side, side), rect_mask(side, side, (20, 20, 10, 10))


def sleep_fill(server, seconds: float, path="/api/v1/jobs", timeout=60, side=64, **fields):
    img, mask = small(side)
    return server.post_fill(img, mask, path=path, model="sleep", options=json.dumps({"seconds": seconds}),
                            timeout=timeout, **fields)


def timed_get(url: str, method="get") -> tuple[requests.Response, float]:
    t = time.perf_counter()
    r = getattr(requests, method)(url, timeout=30)
    return r, time.perf_counter() - t


def wait_for(check, timeout: float = 10.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("busy"), "--max-queued-pixels", str(QUEUE_PIXELS), "--idle-timeout", "2",
                     command=SLOW)
    yield s
    stop_server(s)


@pytest.fixture
def long_job(busy_server):
    """A job that keeps the worker busy for the test, cancelled after it."""
    r = sleep_fill(busy_server, 120)
    assert r.status_code == 202, r.text
    job = r.json()["id"]
    assert wait_for(lambda: requests.get(f"{busy_server.url}/api/v1/jobs/{job}", timeout=10).json()["state"] == "running")
    yield job
    requests.delete(f"{busy_server.url}/api/v1/jobs/{job}", timeout=10)
    assert wait_for(lambda: requests.get(f"{busy_server.url}/api/v1/health", timeout=10).json()["queued_jobs"] == 0, 30)


def test_a_huge_grow_and_feather_answer_in_seconds(server):
    # grow=1000 and feather=1000 around a 10x10 selection of a 2000x2000 image held the worker ~12 minutes.
    img = photo_like(2000, 2000)
    mask = rect_mask(2000, 2000, (995, 995, 10, 10))
    r = server.post_fill(img, mask, model="diffusion", grow=1000, feather=1000, timeout=120)
    assert r.status_code == 422 and r.json()["error"] == "full_mask", r.text  # the soft rim reaches every corner
    r = server.post_fill(img, mask, model="diffusion", output="image", grow=1000, timeout=120)
    assert r.status_code == 200, r.text
    assert r.headers["X-Region"] == "0,0,2000,2000"


def test_grow_and_feather_past_the_image_side_are_refused(server):
    img, mask = small()
    for field in ("grow", "feather"):
        r = server.post_fill(img, mask, **{field: 65})
        assert r.status_code == 400 and r.json()["error"] == "bad_field", r.text
        assert field in r.json()["detail"] and "64 px" in r.json()["detail"]
    assert server.post_fill(img, mask, grow=-64, feather=64, model="diffusion").status_code == 422  # shrunk to nothing


def test_health_models_and_cancel_answer_while_sync_fills_wait(busy_server, long_job):
    with ThreadPoolExecutor(20) as pool:
        waiting = [pool.submit(sleep_fill, busy_server, 0, "/api/v1/inpaint", 120) for _ in range(20)]
        time.sleep(2)  # every call has arrived; the ones over the limit are answered already
        refused = [f.result() for f in waiting if f.done()]
        assert len(refused) == 12, [r.status_code for r in refused]  # 8 wait (serve --max-waiting-fills)
        for r in refused:
            assert r.status_code == 429 and r.json()["error"] == "busy" and int(r.headers["Retry-After"]) > 0
        for path in ("/api/v1/health", "/api/v1/models"):
            r, seconds = timed_get(busy_server.url + path)
            assert r.status_code == 200 and seconds < 1.0, (path, seconds)
        queued = sleep_fill(busy_server, 0).json()["id"]
        r, seconds = timed_get(f"{busy_server.url}/api/v1/jobs/{queued}", "delete")
        assert r.json()["state"] == "cancelled" and seconds < 1.0, seconds
        requests.delete(f"{busy_server.url}/api/v1/jobs/{long_job}", timeout=10)
        assert all(f.result().status_code in (200, 429) for f in waiting)
        assert sum(f.result().status_code == 200 for f in waiting) == 8


def test_the_queue_refuses_past_its_pixel_limit(busy_server, long_job):
    accepted = [sleep_fill(busy_server, 0, side=200) for _ in range(4)]  # 4096 + 4 x 40000 px of 200000
    assert all(r.status_code == 202 for r in accepted)
    r = sleep_fill(busy_server, 0, side=200)
    assert r.status_code == 429 and r.json()["error"] == "queue_full", r.text
    assert int(r.headers["Retry-After"]) > 0 and "MP" in r.json()["detail"]
    assert sleep_fill(busy_server, 0, path="/api/v1/inpaint", side=200).status_code == 429
    requests.delete(f"{busy_server.url}/api/v1/jobs/{accepted[0].json()['id']}", timeout=10)
    assert sleep_fill(busy_server, 0, side=200).status_code == 202  # room again


def test_a_client_that_hangs_up_cancels_its_queued_fill(busy_server, long_job):
    with pytest.raises(requests.Timeout):
        sleep_fill(busy_server, 0, path="/api/v1/inpaint", timeout=1)
    # The queued fill is cancelled, not left to run for nobody once the long job ends.
    assert wait_for(lambda: requests.get(busy_server.url + "/api/v1/health", timeout=10).json()["queued_jobs"] == 0, 5)


def test_a_client_that_hangs_up_cancels_its_running_fill(busy_server):
    with pytest.raises(requests.Timeout):
        sleep_fill(busy_server, 120, path="/api/v1/inpaint", timeout=1)
    # The worker is free long before the 120 s fill would have ended.
    r = sleep_fill(busy_server, 0)
    job = r.json()["id"]
    assert wait_for(lambda: requests.get(f"{busy_server.url}/api/v1/jobs/{job}", timeout=10).json()["state"] == "done", 10)


def test_idle_connections_neither_lock_others_out_nor_linger(busy_server):
    port = int(busy_server.url.rsplit(":", 1)[1])
    idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(110)]
    try:
        r, seconds = timed_get(busy_server.url + "/api/v1/health")
        assert r.status_code == 200 and seconds < 1.0, seconds
        idle[0].settimeout(15)
        assert idle[0].recv(1) == b""  # closed by the server (serve --idle-timeout 2)
    finally:
        for s in idle:
            s.close()


def test_a_job_past_the_time_budget_ends_with_a_clear_error(tmp_path):
    s = start_server(tmp_path, "--max-job-seconds", "1", command=SLOW)
    try:
        r = sleep_fill(s, 60, path="/api/v1/inpaint", timeout=30)
        assert r.status_code == 422 and r.json()["error"] == "time_budget_exceeded", r.text
        assert "1 s" in r.json()["detail"]
        assert sleep_fill(s, 0, path="/api/v1/inpaint").status_code == 200  # the worker goes on
    finally:
        stop_server(s)


def test_synchronous_fills_do_not_push_job_results_out():
    app = create_app(ServerConfig(models_dir=None))
    service = app.extensions["inpaint"]
    service.worker = Worker(classify, keep_max=2, size_of=lambda result: result.pixels.nbytes)
    client = app.test_client()
    img, mask = small()

    def post(path):
        files = {"image": (io.BytesIO(png(img)), "i.png"), "mask": (io.BytesIO(png(mask)), "m.png")}
        return client.post(path, data={**files, "model": "diffusion"})

    job = post("/api/v1/jobs").get_json()["id"]
    assert wait_for(lambda: client.get(f"/api/v1/jobs/{job}").get_json()["state"] == "done")
    assert all(post("/api/v1/inpaint").status_code == 200 for _ in range(3))
    assert client.get(f"/api/v1/jobs/{job}/result").status_code == 200
    for _ in range(2):  # two newer jobs: the store keeps two
        newer = post("/api/v1/jobs").get_json()["id"]
        assert wait_for(lambda: client.get(f"/api/v1/jobs/{newer}").get_json()["state"] == "done")
    r = client.get(f"/api/v1/jobs/{job}")
    assert r.status_code == 404 and "past 2 of them" in r.get_json()["detail"]


def test_the_404_states_the_store_rule_the_readme_states(server):
    from conftest import ROOT

    detail = requests.get(server.url + "/api/v1/jobs/nope", timeout=10).json()["detail"]
    rule = detail[detail.index("(") + 1:-1]
    assert rule == "finished jobs are kept for an hour; past 256 of them or 1 GiB of results, the oldest go first"
    assert rule[0].upper() + rule[1:] in " ".join((ROOT / "README.md").read_text().split())


def test_a_full_queue_refuses_before_decoding(monkeypatch):
    from backend.api import inpaint

    app = create_app(ServerConfig(models_dir=None))
    service = app.extensions["inpaint"]
    service.worker = Worker(classify, max_pixels=5000)
    release = threading.Event()
    blocker = service.worker.submit(lambda progress: release.wait(10), pixels=4096)
    decoded = []
    monkeypatch.setattr(inpaint, "decode_image", lambda *a, **k: decoded.append(1))
    img, mask = small()
    files = {"image": (io.BytesIO(png(img)), "i.png"), "mask": (io.BytesIO(png(mask)), "m.png")}
    r = app.test_client().post("/api/v1/jobs", data=files)
    release.set()
    assert r.status_code == 429 and r.get_json()["error"] == "queue_full" and decoded == []
    assert blocker.done.wait(10)
