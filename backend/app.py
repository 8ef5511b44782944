"""Flask app factory and the production server that runs it."""
from __future__ import annotations

import hmac
import ipaddress
import logging
import sys
import time

import io

from flask import Flask, Request, g, request

from backend.api import errors, inpaint, jobs, models, openapi
from backend.service import ServerConfig, Service

log = logging.getLogger("backend")


class InMemoryRequest(Request):
    """Keeps uploaded files in memory: they are decoded right away, and spooling
    multi-megabyte uploads through temporary files only costs time."""

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


def create_app(config: ServerConfig | None = None) -> Flask:
    config = config or ServerConfig()
    app = Flask("backend")
    app.request_class = InMemoryRequest
    app.config["MAX_CONTENT_LENGTH"] = config.max_upload_mb * 2**20
    app.json.sort_keys = False
    app.extensions["inpaint"] = Service(config)
    errors.install(app)
    for module in (models, inpaint, jobs, openapi):
        app.register_blueprint(module.bp)

    @app.before_request
    def _start_clock():
        g.started = time.perf_counter()

    @app.after_request
    def _log_request(resp):
        print(request_log_line(resp), file=sys.stderr, flush=True)
        return resp

    if config.token:
        expected = f"Bearer {config.token}".encode()

        @app.before_request
        def _authorize():
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return errors.error_response(errors.JobError("unauthorized", "missing or wrong 'Authorization: Bearer <token>'", 401))
    return app


def request_log_line(resp) -> str:
    """Method, path, status, model, image size and ms of the request being answered."""
    fill = g.get("fill_request")  # set once a fill request is parsed
    model = resp.headers.get("X-Model") or (fill.model if fill else "-")
    size = f"{fill.image.shape[1]}x{fill.image.shape[0]}" if fill else "-"
    ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    return f"{request.method} {request.path} {resp.status_code} model={model} image={size} {ms:.0f} ms"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 7860, threads: int = 16) -> None:
    """Run under waitress (works on Linux, macOS and Windows); blocks until interrupted."""
    from waitress import serve as waitress_serve

    if not is_loopback(host) and not config.token:
        raise SystemExit(f"refusing to listen on {host} without --token: anyone on the network could use this machine")
    app = create_app(config)
    service = app.extensions["inpaint"]
    print(f"inpaint-backend on http://{host}:{port}  device={service.device}  default model={service.registry.default}", flush=True)
    # The upload limit is enforced by Flask; waitress's own limit is raised so it does not cut requests first.
    waitress_serve(app, host=host, port=port, threads=threads, max_request_body_size=config.max_upload_mb * 2**20 + 2**20,
                   ident="inpaint-backend", channel_timeout=300)
