"""A bounded property-based run against the real server: whatever arrives, no 5xx, and every error is JSON."""
from __future__ import annotations

import requests
from fuzz_requests import Call, calls, check
from hypothesis import HealthCheck, given, settings

EXAMPLES = 1000  # about 30 s of this machine's CPU: the long run is benchmarks/fuzz_probe.py


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture])
@given(call=calls())
def test_any_request_gets_a_4xx_json_error_or_an_answer(server, call: Call):
    check(call, call.send(server.url))


def test_the_server_still_fills_after_the_run(server):
    r = requests.get(server.url + "/api/v1/health", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok"
