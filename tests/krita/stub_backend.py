"""A stand-in for the backend's API v1 that answers with chosen results, right or deliberately wrong.

Unit tests use it for what the real backend cannot be made to do on demand (two
distinct models, a job that waits to be cancelled, a wrongly sized answer). By hand it
shows that the Krita end-to-end test fails on a wrong image:

    python tests/krita/stub_backend.py --port 7890 --mode echo    # or: solid, good
    KRITA_E2E_BACKEND_URL=http://127.0.0.1:7890 python -m pytest -m krita tests/test_krita_e2e.py

Modes: good   fills the selection with the mean colour around it, alpha from the mask
       echo   answers the image it was sent, unchanged and opaque (a plugin-side paste bug)
       solid  magenta where selected, alpha from the mask (right shape, wrong content)
       slow   never finishes a job until it is cancelled
       small  answers an image of the wrong size
"""
from __future__ import annotations

import argparse
import email.parser
import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

MODES = ("good", "echo", "solid", "slow", "small")


def _decode(data: bytes) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr.ndim == 3:
        arr = arr[:, :, [2, 1, 0, 3]] if arr.shape[2] == 4 else arr[:, :, ::-1]
    return arr


def _encode(rgba: np.ndarray) -> bytes:
    return cv2.imencode(".png", np.ascontiguousarray(rgba[:, :, [2, 1, 0, 3]]))[1].tobytes()


def answer(mode: str, image: np.ndarray, mask: np.ndarray, model: str) -> np.ndarray:
    top = np.iinfo(image.dtype).max
    if image.shape[2] == 3:
        image = np.concatenate([image, np.full(image.shape[:2] + (1,), top, image.dtype)], axis=2)
    if mode == "echo":
        out = image.copy()
        out[:, :, 3] = top
        return out
    if mode == "small":
        return image[: image.shape[0] // 2, : image.shape[1] // 2]
    out = np.zeros_like(image)
    sel = mask > 0
    if mode == "solid":
        colour = np.array([top, 0, top])
    else:  # good: the mean of what is around the selection, nudged per model so models differ
        ring = cv2.dilate(sel.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~sel
        colour = image[ring][:, :3].mean(axis=0) if ring.any() else np.zeros(3)
        colour = np.clip(colour + (sum(map(ord, model)) % 7) * top / 255, 0, top)
    out[sel, :3] = colour.astype(image.dtype)
    scale = top / 255
    out[:, :, 3] = (mask.astype(np.float64) * scale).round().astype(image.dtype)
    return out


class StubBackend:
    def __init__(self, mode: str = "good", models: tuple[str, ...] = ("alpha", "beta"), port: int = 0,
                 untrained: tuple[str, ...] = ("gamma",)):
        self.mode, self.models, self.untrained = mode, models, untrained
        self.jobs: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.cancelled: list[str] = []
        self._ids = itertools.count(1)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: bytes, ctype: str = "application/json", headers=None):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _json(self, status: int, obj):
                self._send(status, json.dumps(obj).encode())

            def do_GET(self):
                stub.requests.append(("GET", self.path))
                if self.path == "/api/v1/health":
                    device = {"type": "cpu", "name": "Stub"}
                    return self._json(200, {"status": "ok", "version": "stub", "device": device})
                if self.path == "/api/v1/models":
                    ready = [{"id": m, "kind": "classical", "status": "ready", "reason": "", "description": m,
                              "size": {"minimum": 1}} for m in stub.models]
                    other = [{"id": m, "kind": "learned", "status": "untrained", "reason": "no weights yet",
                              "description": m, "size": {}} for m in stub.untrained]
                    return self._json(200, {"default": stub.models[0], "models": other + ready})
                parts = self.path.strip("/").split("/")
                job = stub.jobs.get(parts[3]) if len(parts) >= 4 else None
                if job is None:
                    return self._json(404, {"error": "unknown_job", "detail": "no such job"})
                if len(parts) == 4:
                    return self._json(200, {k: job[k] for k in ("id", "state", "progress", "message")})
                x, y, w, h = job["region"]
                return self._send(200, job["png"], "image/png",
                                  {"X-Model": job["model"], "X-Seed": job["seed"], "X-Region": f"{x},{y},{w},{h}"})

            def do_DELETE(self):
                stub.requests.append(("DELETE", self.path))
                job_id = self.path.strip("/").split("/")[3]
                stub.cancelled.append(job_id)
                stub.jobs[job_id]["state"] = "cancelled"
                return self._json(200, {"id": job_id, "state": "cancelled", "progress": 0, "message": "cancelled"})

            def do_POST(self):
                stub.requests.append(("POST", self.path))
                length = int(self.headers["Content-Length"])
                raw = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode() + self.rfile.read(length)
                msg = email.parser.BytesParser().parsebytes(raw)
                form = {p.get_param("name", header="content-disposition"): p.get_payload(decode=True)
                        for p in msg.get_payload()}
                model = form.get("model", b"").decode() or stub.models[0]
                if model not in stub.models:
                    return self._json(409 if model in stub.untrained else 404,
                                      {"error": "model_not_ready" if model in stub.untrained else "unknown_model",
                                       "detail": f"model '{model}' cannot run"})
                image, mask = _decode(form["image"]), _decode(form["mask"])
                hole = mask
                if form.get("fill_transparent") == b"1" and image.shape[2] == 4:  # the hole takes them in, as the API's
                    hole = np.maximum(mask, np.where(image[:, :, 3] == 0, 255, 0).astype(mask.dtype))
                result = answer(stub.mode, image, hole, model)
                ys, xs = np.nonzero(hole)
                region = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
                if stub.mode in ("echo", "small"):
                    region = (0, 0, result.shape[1], result.shape[0])
                job_id = str(next(stub._ids))
                state = "running" if stub.mode == "slow" else "done"
                stub.jobs[job_id] = {"id": job_id, "state": state, "progress": 0.5 if state == "running" else 1.0,
                                     "message": state, "png": _encode(result), "model": model, "region": region,
                                     "fields": {k: v.decode() for k, v in form.items()
                                                if k not in ("image", "mask", "source")},
                                     "image": image, "mask": mask,
                                     "source": _decode(form["source"]) if "source" in form else None,
                                     "seed": form.get("seed", b"7").decode()}
                return self._json(202, {k: stub.jobs[job_id][k] for k in ("id", "state", "progress", "message")})

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubBackend:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="stand-in backend with right or wrong answers")
    parser.add_argument("--port", type=int, default=7890)
    parser.add_argument("--mode", choices=MODES, default="echo")
    args = parser.parse_args()
    with StubBackend(args.mode, models=("diffusion",), port=args.port) as stub:
        print(f"stub backend ({args.mode}) on {stub.url}", flush=True)
        threading.Event().wait()
