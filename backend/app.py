"""Flask app factory and the production server that runs it."""
from __future__ import annotations

import hmac
import io
import json
import logging
import sys
import time

from flask import Flask, Request, g, request

from backend.api import errors, inpaint, jobs, models, openapi, security
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
    security.install(app, security.AccessRules(config.host, config.allowed_hosts, config.allowed_origins))
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
            if request.method == "OPTIONS":  # a browser's CORS preflight carries no credentials and reads nothing
                return None
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return errors.error_response(errors.JobError("unauthorized", "missing or wrong 'Authorization: Bearer <token>'", 401))
    return app


def _waitress_errors_in_json(server) -> None:
    """Make waitress answer what it refuses itself (malformed HTTP, oversized headers) in the API's JSON.

    waitress has no setting for it; its servers name the channel class, and the channel the task that writes
    those answers.
    """
    from waitress.channel import HTTPChannel
    from waitress.server import BaseWSGIServer
    from waitress.task import ErrorTask

    class JsonErrorTask(ErrorTask):
        def execute(self):
            e = self.request.error
            code = {400: "bad_request", 413: "upload_too_large", 431: "headers_too_large"}.get(e.code, "http_error")
            body = json.dumps({"error": code, "detail": str(e.body) or e.reason}).encode()
            self.status = f"{e.code} {e.reason}"
            self.response_headers.append(("Content-Type", "application/json"))
            self.set_close_on_finish()
            self.content_length = len(body)
            self.write(body)

    class JsonErrorChannel(HTTPChannel):
        error_task_class = JsonErrorTask

    listeners = getattr(server, "map", {}).values() if not isinstance(server, BaseWSGIServer) else [server]
    for listener in listeners:  # one per address (a MultiSocketServer for a name with both IPv4 and IPv6)
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = JsonErrorChannel


def request_log_line(resp) -> str:
    """Method, path, status, model, image size and ms of the request being answered."""
    fill = g.get("fill_request")  # set once a fill request is parsed
    model = resp.headers.get("X-Model") or (fill.model if fill else "-")
    size = f"{fill.image.shape[1]}x{fill.image.shape[0]}" if fill else "-"
    ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
    return f"{request.method} {request.path} {resp.status_code} model={model} image={size} {ms:.0f} ms"


def serve(config: ServerConfig, port: int = 7860, threads: int = 16) -> None:
    """Run under waitress (works on Linux, macOS and Windows) on config.host; blocks until interrupted."""
    from waitress.server import create_server

    host = config.host
    if not 1 <= config.max_waiting_fills < threads:
        raise ValueError(f"--max-waiting-fills must be from 1 to {threads - 1}: the server has {threads} threads, "
                         "and health and cancel need one left")
    if config.token is not None and not config.token.strip():
        raise SystemExit("--token is empty: give a real token (or leave --token out to serve loopback without one)")
    if not security.is_loopback(host) and not config.token:
        raise SystemExit(f"refusing to listen on {host} without --token: anyone on the network could use this machine")
    app = create_app(config)
    service = app.extensions["inpaint"]
    print(f"inpaint-backend on http://{host}:{port}  device={service.device}  default model={service.registry.default}", flush=True)
    # The upload limit is enforced by Flask; waitress's own limit is raised so it does not cut requests first.
    # Idle connections are closed after idle_timeout (checked every second) and 500 may be open, so a
    # hundred idle ones neither lock others out nor linger. A lookahead of one request keeps reading each
    # connection while its request runs: that is how waitress notices a client that hung up.
    server = create_server(app, host=host, port=port, threads=threads, ident="inpaint-backend",
                           max_request_body_size=config.max_upload_mb * 2**20 + 2**20,
                           channel_timeout=config.idle_timeout, cleanup_interval=1, connection_limit=500,
                           channel_request_lookahead=1)
    _waitress_errors_in_json(server)
    logging.basicConfig()  # as waitress.serve does: its warnings and ours reach stderr
    server.run()
