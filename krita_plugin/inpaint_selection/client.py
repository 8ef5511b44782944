"""The backend's HTTP API v1 over urllib. Every call blocks, so it runs on a worker thread, never Krita's UI thread."""
from __future__ import annotations

import json
import secrets
import socket
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

DEFAULT_URL = "http://127.0.0.1:7860"


class BackendError(Exception):
    """A failed call: `code` is the backend's error code, or one of ours for transport failures
    (not_running, unreachable, timeout, bad_url, bad_response)."""

    def __init__(self, code: str, detail: str, status: int = 0):
        super().__init__(detail)
        self.code, self.detail, self.status = code, detail, status


@dataclass
class Result:
    png: bytes
    model: str
    seed: int | None
    region: tuple[int, int, int, int] | None  # x, y, w, h of the changed pixels, in the sent image


def is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _multipart(files: dict[str, bytes], fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = "----inpaint" + secrets.token_hex(12)
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, data in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
                     f"Content-Type: image/png\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _region(header: str | None) -> tuple[int, int, int, int] | None:
    try:
        x, y, w, h = (int(v) for v in (header or "").split(","))
    except ValueError:
        return None
    return x, y, w, h


class Client:
    def __init__(self, url: str = DEFAULT_URL, token: str = "", timeout: float = 10.0):
        self.url = (url or DEFAULT_URL).strip().rstrip("/")
        if not self.url.startswith(("http://", "https://")):
            self.url = "http://" + self.url
        self.token = token.strip()
        self.timeout = timeout
        # A system proxy must never see requests meant for this machine.
        handlers = [urllib.request.ProxyHandler({})] if is_loopback(self.url) else []
        self._opener = urllib.request.build_opener(*handlers)

    def _call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
              timeout: float | None = None) -> tuple[bytes, Any]:
        req = urllib.request.Request(self.url + path, data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(req, timeout=timeout or self.timeout) as resp:
                return resp.read(), resp.headers
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)
                raise BackendError(str(err["error"]), str(err.get("detail", "")), e.code) from None
            except (ValueError, KeyError, TypeError):
                raise BackendError("http_error", f"HTTP {e.code} {e.reason}", e.code) from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, ConnectionRefusedError):
                raise BackendError("not_running", f"nothing answers at {self.url}") from None
            if isinstance(reason, socket.gaierror):
                raise BackendError("bad_url", f"unknown host in {self.url}") from None
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise BackendError("timeout", f"{self.url} did not answer in time") from None
            raise BackendError("unreachable", f"{self.url}: {reason}") from None
        except TimeoutError:
            raise BackendError("timeout", f"{self.url} did not answer in time") from None
        except (ConnectionError, ValueError) as e:  # reset mid-answer; ValueError: malformed URL
            raise BackendError("unreachable", f"{self.url}: {e}") from None

    def _json(self, method: str, path: str, **kw) -> dict[str, Any]:
        raw, _ = self._call(method, path, **kw)
        try:
            body = json.loads(raw)
        except ValueError:
            raise BackendError("bad_response",
                               f"{path} did not answer JSON; is {self.url} the inpaint backend?") from None
        if not isinstance(body, dict):
            raise BackendError("bad_response", f"{path} answered {type(body).__name__}, not an object")
        return body

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/api/v1/health", timeout=min(self.timeout, 5.0))

    def models(self) -> dict[str, Any]:
        return self._json("GET", "/api/v1/models")

    def submit(self, image_png: bytes, mask_png: bytes, fields: dict[str, str],
               source_png: bytes | None = None) -> dict[str, Any]:
        """Queue a fill; source_png: the sampling area (white = may copy from here), sent as the 'source' part."""
        files = {"image": image_png, "mask": mask_png}
        if source_png is not None:
            files["source"] = source_png
        body, ctype = _multipart(files, fields)
        return self._json("POST", "/api/v1/jobs", body=body, content_type=ctype, timeout=max(self.timeout, 120.0))

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/api/v1/jobs/{urllib.parse.quote(job_id)}")

    def result(self, job_id: str) -> Result:
        raw, headers = self._call("GET", f"/api/v1/jobs/{urllib.parse.quote(job_id)}/result",
                                  timeout=max(self.timeout, 120.0))
        if not raw.startswith(b"\x89PNG"):
            raise BackendError("bad_response", "the result is not a PNG image")
        seed = headers.get("X-Seed")
        return Result(raw, headers.get("X-Model", ""), int(seed) if seed and seed.isdigit() else None,
                      _region(headers.get("X-Region")))

    def cancel(self, job_id: str) -> None:
        self._call("DELETE", f"/api/v1/jobs/{urllib.parse.quote(job_id)}")
