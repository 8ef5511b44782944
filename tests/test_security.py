"""No web page can drive the backend: Host and Origin checks on every route, CORS only when configured."""
from __future__ import annotations

import subprocess
import sys

import pytest
import requests
from conftest import photo_like, png, rect_mask, start_server, stop_server

from backend.api.security import AccessRules, host_name

ROUTES = [("GET", "/api/v1/health"), ("GET", "/api/v1/models"), ("GET", "/api/v1/openapi.json"),
          ("POST", "/api/v1/inpaint"), ("POST", "/api/v1/jobs"), ("GET", "/api/v1/jobs/1-abc"),
          ("GET", "/api/v1/jobs/1-abc/result"), ("DELETE", "/api/v1/jobs/1-abc"), ("GET", "/api/v1/nothing-here"),
          ("OPTIONS", "/api/v1/inpaint")]


def fill_parts():
    return {"image": ("i.png", png(photo_like(32, 32)), "image/png"),
            "mask": ("m.png", png(rect_mask(32, 32, (8, 8, 8, 8))), "image/png")}


def call(server, method, path, headers):
    files = fill_parts() if method == "POST" else None
    return requests.request(method, server.url + path, files=files, data={"model": "diffusion"} if files else None,
                            headers=headers, timeout=60)


def port(server) -> str:
    return server.url.rsplit(":", 1)[1]


@pytest.mark.parametrize("method, path", ROUTES)
def test_rebinding_host_is_refused_on_every_route(server, method, path):
    r = call(server, method, path, {"Host": f"evil.example:{port(server)}"})
    assert r.status_code == 421, r.text
    assert r.headers["Content-Type"] == "application/json" and r.json()["error"] == "wrong_host"
    assert "--allowed-host" in r.json()["detail"]


@pytest.mark.parametrize("method, path", ROUTES)
def test_cross_origin_request_is_refused_on_every_route(server, method, path):
    r = call(server, method, path, {"Origin": "http://evil.example"})
    assert r.status_code == 403, r.text
    assert r.json()["error"] == "forbidden_origin"
    assert not any(h.lower().startswith("access-control-") for h in r.headers)


def test_a_page_cannot_run_fills_even_from_a_loopback_origin(server):
    for origin in ("null", "http://127.0.0.1:8000", f"http://127.0.0.1:{port(server)}"):
        r = call(server, "POST", "/api/v1/jobs", {"Origin": origin})
        assert r.status_code == 403, (origin, r.text)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST.", "[::1]", "127.0.0.2"])
def test_loopback_names_are_served(server, host):
    r = requests.get(server.url + "/api/v1/models", headers={"Host": f"{host}:{port(server)}"}, timeout=10)
    assert r.status_code == 200, r.text
    r = call(server, "POST", "/api/v1/inpaint", {"Host": host})
    assert r.status_code == 200, r.text


def test_no_cors_headers_by_default(server):
    r = requests.get(server.url + "/api/v1/models", timeout=10)
    assert r.status_code == 200
    assert not any(h.lower().startswith("access-control-") for h in r.headers)


def test_host_rules():
    rules = AccessRules("127.0.0.1", ["Studio.lan"])
    assert rules.host_allowed("studio.lan:7860") and rules.host_allowed("STUDIO.LAN.") and rules.host_allowed(None)
    assert not rules.host_allowed("evil.example") and not rules.host_allowed("192.0.2.1:7860")
    assert not rules.host_allowed("studio.lan.evil.example") and not rules.host_allowed("")
    wildcard = AccessRules("0.0.0.0")
    assert wildcard.host_allowed("192.0.2.1:7860") and wildcard.host_allowed("[2001:db8::1]:7860")
    assert not wildcard.host_allowed("evil.example:7860")  # names still need --allowed-host
    assert host_name("[::1]:80") == "::1" and host_name("::1") == "::1" and host_name("Name:1") == "name"


@pytest.fixture(scope="module")
def configured_server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("configured"), "--allowed-host", "studio.lan", "--allowed-host", "other.lan",
                     "--allowed-origin", "http://localhost:3000/")
    yield s
    stop_server(s)


def test_allowed_host_names_are_served(configured_server):
    for name in ("studio.lan", "other.lan"):
        r = call(configured_server, "GET", "/api/v1/health", {"Host": f"{name}:{port(configured_server)}"})
        assert r.status_code == 200, r.text
    assert call(configured_server, "GET", "/api/v1/health", {"Host": "evil.example"}).status_code == 421


def test_allowed_origin_gets_cors_headers_and_others_do_not(configured_server):
    origin = "http://localhost:3000"
    r = call(configured_server, "POST", "/api/v1/inpaint", {"Origin": origin})
    assert r.status_code == 200, r.text
    assert r.headers["Access-Control-Allow-Origin"] == origin and "Origin" in r.headers["Vary"]
    assert "X-Region" in r.headers["Access-Control-Expose-Headers"]
    preflight = requests.options(configured_server.url + "/api/v1/inpaint", timeout=10, headers={
        "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    r = call(configured_server, "GET", "/api/v1/models", {"Origin": "http://localhost:3001"})
    assert r.status_code == 403 and "Access-Control-Allow-Origin" not in r.headers


def test_empty_token_is_refused(tmp_path):
    for token in ("", "  "):
        proc = subprocess.run([sys.executable, "-m", "backend.cli", "serve", "--token", token, "--models-dir", str(tmp_path)],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0 and "--token is empty" in proc.stderr, proc.stderr
