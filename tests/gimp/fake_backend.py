"""A scripted stand-in for the backend: jobs that never finish, and a log of every request.

Used where the real backend is too quick to observe: cancelling, and a plug-in killed mid-job.
"""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeBackend:
    """Jobs that never finish, and a log of every request (method, path, Authorization)."""

    def __init__(self, status: int = 202, body: dict | None = None):
        self.requests: list[tuple[str, str, str]] = []
        self.cancelled = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _log(self):
                fake.requests.append((self.command, self.path, self.headers.get("Authorization", "")))

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self._log()
                self._answer(status, body or {"id": "job-1", "state": "queued", "progress": 0, "message": "queued"})

            def do_GET(self):
                self._log()
                self._answer(200, {"id": "job-1", "state": "running", "progress": 0.5, "message": "filling"})

            def do_DELETE(self):
                self._log()
                fake.cancelled.set()
                self._answer(200, {"id": "job-1", "state": "cancelled", "progress": 0.5, "message": "cancelled"})

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
