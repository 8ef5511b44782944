"""Flask app factory and the production server that runs it."""
from __future__ import annotations

import hmac
import ipaddress
import logging

import io

from flask import Flask, Request, request

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

    if config.token:
        expected = f"Bearer {config.token}".encode()

        @app.before_request
        def _authorize():
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return errors.error_response(errors.JobError("unauthorized", "missing or wrong 'Authorization: Bearer <token>'", 401))
    return app


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 7860, threads: int = 16) -> None:
    """Run under waitress (works on Linux, macOS and Windows); blocks until interrupted."""
    if not 1 <= config.max_waiting_fills < threads:
        raise ValueError(f"--max-waiting-fills must be from 1 to {threads - 1}: the server has {threads} threads, "
                         "and health and cancel need one left")
    from waitress import serve as waitress_serve

    if not is_loopback(host) and not config.token:
        raise SystemExit(f"refusing to listen on {host} without --token: anyone on the network could use this machine")
    app = create_app(config)
    service = app.extensions["inpaint"]
    print(f"inpaint-backend on http://{host}:{port}  device={service.device}  default model={service.registry.default}", flush=True)
    # The upload limit is enforced by Flask; waitress's own limit is raised so it does not cut requests first.
    # Idle connections are closed after idle_timeout (checked every second) and 500 may be open, so a
    # hundred idle ones neither lock others out nor linger. A lookahead of one request keeps reading each
    # connection while its request runs: that is how waitress notices a client that hung up.
    waitress_serve(app, host=host, port=port, threads=threads, max_request_body_size=config.max_upload_mb * 2**20 + 2**20,
                   ident="inpaint-backend", channel_timeout=config.idle_timeout, cleanup_interval=1,
                   connection_limit=500, channel_request_lookahead=1)
