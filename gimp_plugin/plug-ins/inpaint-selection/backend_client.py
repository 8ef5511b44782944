"""The backend's HTTP API (v1) over urllib, with failures put in words a GIMP user can act on.

Nothing here touches GIMP, so it runs on the plug-in's worker thread and in plain pytest.
"""
from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

FINAL_STATES = {"done", "failed", "cancelled"}

# Hints added to the backend's own detail, by error code (backend/api/errors.py).
HINTS = {
    "unauthorized": "The server was started with --token: enter the same token in the dialog "
                    "(or set INPAINT_BACKEND_TOKEN).",
    "unknown_model": "Pick another model in the dialog; the list comes from the server.",
    "model_not_ready": "Train it first, or pick a model whose status is ready.",
    "full_mask": "Select less than the whole image: the fill needs pixels to copy from.",
    "upload_too_large": "Select a smaller area, or start the server with a larger --max-upload-mb.",
    "image_too_large": "Select a smaller area, or start the server with a larger --max-pixels.",
    "source_too_small": "Widen Sample width, save a larger channel to sample from, or raise Context.",
    "no_transparent": "Untick Fill transparent areas, or fill a layer that has transparent pixels "
                      "(Source: Visible image sees an opaque background).",
}


class BackendError(Exception):
    """A failure whose message is meant for the user; `code` is the API error code when there is one."""

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ModelInfo:
    id: str
    status: str  # ready | untrained | broken
    description: str = ""
    reason: str = ""
    summary: str = ""  # a checkpoint's card in one line: against Telea, trained on what, for how long

    @property
    def ready(self) -> bool:
        return self.status == "ready"


def model_note(models: list[ModelInfo], model_id: str) -> str:
    """What the dialog shows under the model field for the id typed or picked: its description and card summary."""
    for m in models:
        if m.id == model_id:
            return " ".join(part for part in (m.description, m.summary and f"({m.summary})") if part)
    return ""


@dataclass(frozen=True)
class Result:
    png: bytes
    region: str | None  # X-Region: x,y,w,h of the changed pixels inside the sent crop
    model: str | None
    seed: str | None


def encode_multipart(fields: dict[str, str], files: dict[str, bytes]) -> tuple[bytes, str]:
    """A multipart/form-data body (PNG file parts named like their field) and its Content-Type."""
    boundary = "inpaint-" + secrets.token_hex(12)
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, data in files.items():
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.png"\r\n'
                f"Content-Type: image/png\r\n\r\n").encode()
        parts.append(head + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Backend:
    """One server: `url` like http://127.0.0.1:7860, `token` for servers started with --token."""

    def __init__(self, url: str, token: str = "", timeout: float = 60.0):
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout
        host = urlsplit(self.url).hostname or ""
        # A desktop's proxy settings must not capture requests to this machine.
        handlers = [urllib.request.ProxyHandler({})] if _is_loopback(host) else []
        self._opener = urllib.request.build_opener(*handlers)

    def _call(self, method: str, path: str, body: bytes | None = None, content_type: str | None = None,
              timeout: float | None = None, accept: str = "application/json") -> tuple[bytes, dict[str, str]]:
        headers = {"Accept": accept}
        if content_type:
            headers["Content-Type"] = content_type
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
            with self._opener.open(req, timeout=timeout or self.timeout) as resp:
                return resp.read(), dict(resp.headers.items())
        except urllib.error.HTTPError as e:
            raise self._http_error(e) from None
        except urllib.error.URLError as e:
            raise self._network_error(e.reason) from None
        except OSError as e:  # timeouts and resets while reading the answer
            raise self._network_error(e) from None
        except ValueError:
            raise BackendError(f"The server URL '{self.url}' is not valid.") from None

    def _network_error(self, reason) -> BackendError:
        if isinstance(reason, ConnectionRefusedError):
            return BackendError(f"The inpainting backend is not running at {self.url}. Start it with "
                                f"'inpaint-backend serve', or correct the server URL.", "unreachable")
        if isinstance(reason, (socket.timeout, TimeoutError)):
            return BackendError(f"The backend at {self.url} did not answer in time.", "timeout")
        if isinstance(reason, socket.gaierror):
            return BackendError(f"The server name in {self.url} is unknown. Check the server URL.", "unreachable")
        return BackendError(f"Cannot reach the backend at {self.url}: {reason}.", "unreachable")

    def _http_error(self, e: urllib.error.HTTPError) -> BackendError:
        try:
            payload = json.loads(e.read() or b"{}")
            code, detail = payload["error"], payload["detail"]
        except (ValueError, KeyError, TypeError, OSError):
            return BackendError(f"{self.url} answered HTTP {e.code}: is it the inpainting backend?", "http_error")
        verb = "refused the request" if e.code in (401, 403) else "could not fill the selection"
        message = f"The backend at {self.url} {verb}: {detail}"
        if code in HINTS:
            message += f"\n{HINTS[code]}"
        return BackendError(message, code)

    def _json(self, method: str, path: str, **kwargs) -> dict:
        data, _ = self._call(method, path, **kwargs)
        try:
            return json.loads(data)
        except ValueError:
            raise BackendError(f"{self.url} did not answer with JSON: is it the inpainting backend?",
                               "http_error") from None

    def models(self, timeout: float = 5.0) -> tuple[str, list[ModelInfo]]:
        """(default id, every model) from GET /api/v1/models."""
        listing = self._json("GET", "/api/v1/models", timeout=timeout)
        models = [ModelInfo(m["id"], m.get("status", "ready"), m.get("description", ""), m.get("reason") or "",
                            str(m.get("summary") or "")) for m in listing.get("models", [])]
        return listing.get("default", ""), models

    def submit(self, image_png: bytes, mask_png: bytes, fields: dict[str, str], source_png: bytes | None = None) -> dict:
        """Queue a fill; source_png: the sampling area (white = may copy from here), sent as the 'source' part."""
        files = {"image": image_png, "mask": mask_png}
        if source_png is not None:
            files["source"] = source_png
        body, content_type = encode_multipart(fields, files)
        return self._json("POST", "/api/v1/jobs", body=body, content_type=content_type)

    def job(self, job_id: str) -> dict:
        return self._json("GET", f"/api/v1/jobs/{job_id}")

    def result(self, job_id: str) -> Result:
        data, headers = self._call("GET", f"/api/v1/jobs/{job_id}/result", accept="image/png")
        h = {k.lower(): v for k, v in headers.items()}
        if h.get("content-type", "").startswith("application/json"):
            raise BackendError("The backend answered the result with JSON instead of a PNG.", "http_error")
        return Result(data, h.get("x-region"), h.get("x-model"), h.get("x-seed"))

    def cancel(self, job_id: str) -> None:
        self._call("DELETE", f"/api/v1/jobs/{job_id}", timeout=5)


def job_failure(job: dict) -> BackendError:
    """The words for a job that ended failed or cancelled."""
    if job.get("state") == "cancelled":
        return BackendError("The fill was cancelled.", "cancelled")
    err = job.get("error") or {}
    code, detail = err.get("error"), err.get("detail") or job.get("message") or "unknown error"
    message = f"The backend could not fill the selection: {detail}"
    if code in HINTS:
        message += f"\n{HINTS[code]}"
    return BackendError(message, code)
