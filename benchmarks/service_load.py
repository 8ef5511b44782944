"""The server under load: /health while the worker is busy and threads and connections are taken, and the
memory that 300 queued jobs hold.

For each checkout (this one, and any given with --checkout, e.g. the main one to compare), a real server
starts on a free loopback port and:

1. /health is timed on the idle server (the reference latency);
2. a long patchmatch job keeps the worker busy; 110 connections are opened and left idle, and 20
   synchronous fills are sent at once (they wait behind the long job, or are refused);
3. /health, /api/v1/models and DELETE of a queued job are timed while all that goes on.

Then on a fresh server, behind a long job, 300 jobs of a 1000x1000 image are queued (POST /api/v1/jobs):
how many are accepted and refused, and how much the server's resident memory grew (after them, and its peak).

A request that takes longer than --timeout seconds counts as timed out. Linux only (memory from /proc).

    nice -n 5 python benchmarks/service_load.py [--checkout /path/to/other/checkout] [--out benchmarks/results]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.api_latency import free_port, textured  # noqa: E402
from backend.images import encode_png  # noqa: E402


def rss_mib(pid: int, key: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ":")) / 1024


def fill_files(side: int, hole: int, seed: int = 0) -> dict:
    mask = np.zeros((side, side), np.uint8)
    a = (side - hole) // 2
    mask[a:a + hole, a:a + hole] = 255
    return {"image": encode_png(textured(side, side, seed)), "mask": encode_png(mask)}


def timed(method: str, url: str, timeout: float, **kwargs) -> float | None:
    """Seconds the request took, or None when it timed out or the connection failed."""
    t = time.perf_counter()
    try:
        getattr(requests, method)(url, timeout=timeout, **kwargs)
    except requests.RequestException:
        return None
    return time.perf_counter() - t


def latency(samples: list[float | None]) -> str:
    done = sorted(s * 1000 for s in samples if s is not None)
    lost = len(samples) - len(done)
    if not done:
        return f"all {lost} timed out"
    text = f"median {statistics.median(done):.0f} ms, max {done[-1]:.0f} ms"
    return text + (f", {lost} of {len(samples)} timed out" if lost else "")


def start(checkout: Path, models: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(checkout))  # that checkout's backend, whatever is installed
    proc = subprocess.Popen([sys.executable, "-m", "backend.cli", "serve", "--port", str(port), "--device", "cpu",
                             "--models-dir", models], cwd=checkout, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            requests.get(url + "/api/v1/health", timeout=1)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"the server in {checkout} did not start")


def sample(n: int, request) -> list[float | None]:
    """n timings of request(); after three timeouts in a row the rest count as timed out too (a stuck server)."""
    out: list[float | None] = []
    while len(out) < n:
        out.append(request())
        if out[-3:] == [None] * 3:
            out += [None] * (n - len(out))
    return out


def long_job(url: str) -> None:
    """A patchmatch job that keeps the worker busy for minutes."""
    options = {"model": "patchmatch", "options": json.dumps({"iterations": 30, "search": 20})}
    requests.post(url + "/api/v1/jobs", files=fill_files(1400, 700), data=options, timeout=60).raise_for_status()


def waiting(checkout: Path, timeout: float, repeats: int) -> dict[str, str]:
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as models:
        proc, url = start(checkout, models)
        idle: list[socket.socket] = []
        try:
            out["/health, idle server"] = latency(sample(repeats, lambda: timed("get", url + "/api/v1/health", timeout)))
            long_job(url)
            idle = [socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5) for _ in range(110)]
            answers: list[int | None] = []

            def sync_fill(seed: int) -> None:
                try:
                    answers.append(requests.post(url + "/api/v1/inpaint", files=fill_files(256, 64, seed), timeout=600).status_code)
                except requests.RequestException:
                    answers.append(None)

            for i in range(20):
                threading.Thread(target=sync_fill, args=(i,), daemon=True).start()
            time.sleep(3)
            out["synchronous fills answered at once (of 20)"] = f"{len(answers)} (HTTP {', '.join(map(str, sorted(set(answers)))) or '-'})"
            out["/health, busy: long job, 20 sync fills, 110 idle connections"] = latency(
                sample(repeats, lambda: timed("get", url + "/api/v1/health", timeout)))
            out["/api/v1/models, busy"] = latency(sample(max(3, repeats // 3), lambda: timed("get", url + "/api/v1/models", timeout)))

            def delete_a_queued_job() -> float | None:
                try:
                    job = requests.post(url + "/api/v1/jobs", files=fill_files(64, 16), timeout=timeout).json()["id"]
                except (requests.RequestException, KeyError, ValueError):
                    return None
                return timed("delete", f"{url}/api/v1/jobs/{job}", timeout)

            out["DELETE of a queued job, busy"] = latency(sample(5, delete_a_queued_job))
        finally:
            for s in idle:
                s.close()
            proc.kill()
            proc.wait(10)
    return out


def queued(checkout: Path, timeout: float, jobs: int = 300) -> dict[str, str]:
    out: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as models:
        proc, url = start(checkout, models)
        try:
            long_job(url)
            before = rss_mib(proc.pid)
            files = fill_files(1000, 100)
            codes: dict[str, int] = {}
            for _ in range(jobs):
                try:
                    code = str(requests.post(url + "/api/v1/jobs", files=files, timeout=timeout).status_code)
                except requests.RequestException:
                    code = "timed out"
                codes[code] = codes.get(code, 0) + 1
            after, peak = rss_mib(proc.pid), rss_mib(proc.pid, "VmHWM")
            out[f"{jobs} queued 1 MP jobs: answers"] = ", ".join(f"{n} x {c}" for c, n in sorted(codes.items()))
            out["server memory growth after them / at peak, MiB"] = f"{after - before:.0f} / {peak - before:.0f}"
        finally:
            proc.kill()
            proc.wait(10)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkout", type=Path, action="append", default=[],
                    help="also measure the server of this checkout (repeatable); this one is always measured first")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds before a request counts as timed out")
    ap.add_argument("--repeats", type=int, default=30, help="/health requests per measurement")
    ap.add_argument("--out", type=Path, default=None, help="also write service_load.md here")
    args = ap.parse_args()

    checkouts = [ROOT] + [c.resolve() for c in args.checkout]
    results = {}
    for checkout in checkouts:
        print(f"measuring {checkout} ...", file=sys.stderr, flush=True)
        results[checkout] = {**waiting(checkout, args.timeout, args.repeats), **queued(checkout, args.timeout)}
    rows = list(results[ROOT])
    lines = ["| measurement | " + " | ".join(str(c) for c in checkouts) + " |", "|---" * (len(checkouts) + 1) + "|"]
    lines += [f"| {row} | " + " | ".join(results[c].get(row, "-") for c in checkouts) + " |" for row in rows]
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "service_load.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
