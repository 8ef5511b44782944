"""Send N fuzzed requests to a running server and count the answers by status class.

The requests are the test suite's (tests/fuzz_requests.py: well-formed and broken
fills and jobs from the OpenAPI document and the engines' options, unknown routes
and methods, foreign Host and Origin headers), drawn at random instead of from a
fixed seed, with no shrinking. Prints the counts by status class, the most common
statuses and error codes, and each 5xx or non-JSON error (at most 10).

    python -m backend.cli serve --port 7860 --device cpu --models-dir /tmp/empty-models &
    nice -n 5 python benchmarks/fuzz_probe.py --url http://127.0.0.1:7860 [-n 10000] [--seed S]
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from fuzz_requests import Call, calls, check  # noqa: E402
from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:7860")
    parser.add_argument("-n", "--requests", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=None, help="hypothesis seed (default: random)")
    args = parser.parse_args()

    classes, statuses, codes, bad = Counter(), Counter(), Counter(), []

    @settings(max_examples=args.requests, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(call=calls())
    def probe(call: Call):
        try:
            r = call.send(args.url)
        except requests.RequestException as e:  # the server must always answer: count it as a failure
            classes["no answer"] += 1
            bad.append(f"{call.method} {call.path}: {type(e).__name__}: {e}")
            return
        classes[f"{r.status_code // 100}xx"] += 1
        statuses[r.status_code] += 1
        if r.status_code >= 400 and r.content and r.headers.get("Content-Type") == "application/json":
            codes[r.json().get("error")] += 1
        try:
            check(call, r)
        except AssertionError as e:
            bad.append(str(e)[:400])

    if args.seed is not None:
        probe = seed(args.seed)(probe)
    requests.get(args.url + "/api/v1/health", timeout=10).raise_for_status()
    started = time.perf_counter()
    probe()
    elapsed = time.perf_counter() - started
    total = sum(classes.values())
    print(f"{total} requests in {elapsed:.0f} s to {args.url}")
    for name in ("2xx", "3xx", "4xx", "5xx", "no answer"):
        print(f"  {name:>9}: {classes[name]}")
    print("statuses:", ", ".join(f"{s}: {n}" for s, n in sorted(statuses.items())))
    print("error codes:", ", ".join(f"{c}: {n}" for c, n in codes.most_common()))
    print(f"5xx, non-JSON errors or no answer: {len(bad)}")
    for line in bad[:10]:
        print("  ", line)
    alive = requests.get(args.url + "/api/v1/health", timeout=10).status_code == 200
    print("server still answers /health:", alive)
    return 0 if not bad and alive else 1


if __name__ == "__main__":
    sys.exit(main())
