"""Shared fixtures: synthetic images, PNG helpers and a real server on a free loopback port."""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
import torch

from backend.images import encode_png

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(arr: np.ndarray) -> bytes:
    return encode_png(arr)


def png_header_only(w: int, h: int) -> bytes:
    """A PNG that claims w x h but carries no pixels: size checks must not need to decode."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def decode(data: bytes) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert arr is not None, "response is not an image"
    if arr.ndim == 3:
        arr = arr[:, :, [2, 1, 0, 3]] if arr.shape[2] == 4 else arr[:, :, ::-1]
    return arr


def photo_like(h: int, w: int, seed: int = 0, dtype=np.uint8) -> np.ndarray:
    """A smooth gradient with texture: structure a fill can be checked against."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w, yy / h, 0.5 + 0.25 * np.sin(xx / 17.0) * np.cos(yy / 23.0)], axis=2)
    noise = rng.normal(0, 0.03, (h, w, 3))
    top = 65535 if dtype == np.uint16 else 255
    return (np.clip(base + noise, 0, 1) * top).astype(dtype)


def fill_box_and_check(engine, shape: tuple[int, int], box: tuple[int, int, int, int], **request) -> None:
    """Fill a (y, x, height, width) box of a photo-like image through the region pipeline: only the box changes."""
    from backend.engines.region import fill_region
    from backend.request import FillRequest, Output

    (h, w), (y, x, mh, mw) = shape, box
    image = photo_like(h, w, seed=2)
    mask = np.zeros((h, w), np.float32)
    mask[y:y + mh, x:x + mw] = 1
    out = fill_region(engine, FillRequest(image, mask, output=Output.IMAGE, **request)).pixels
    assert out.shape == image.shape
    assert np.array_equal(out[mask == 0], image[mask == 0]) and not np.array_equal(out[mask > 0], image[mask > 0])


def photo_batch(n: int, size: int, seeds=None) -> torch.Tensor:
    """(n, 3, size, size) photo-like images in [0, 1]."""
    seeds = range(n) if seeds is None else seeds
    return torch.from_numpy(np.stack([photo_like(size, size, seed=s) for s in seeds])).permute(0, 3, 1, 2).float() / 255


def overfit(method, image: torch.Tensor, hole: torch.Tensor, steps: int) -> list[dict[str, float]]:
    """Train a method `steps` times on one fixed batch; every logged loss must stay finite."""
    from backend.training.method import StepContext

    ctx = StepContext(method.build_optimizers(), torch.device("cpu"), amp=False)
    history = [method.train_step(image, hole, ctx, step) for step in range(steps)]
    assert all(np.isfinite(v) for h in history for v in h.values())
    return history


def assert_falls(history: list[dict[str, float]], terms, ratio: float, head: int = 3, tail: int = 5) -> None:
    """Each term's mean over the last `tail` steps is under `ratio` times its mean over the first `head`."""
    for term in terms:
        first, last = np.mean([h[term] for h in history[:head]]), np.mean([h[term] for h in history[-tail:]])
        assert last < ratio * first, (term, first, last)


def rect_mask(h: int, w: int, *rects) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    for x, y, rw, rh in rects:
        m[y:y + rh, x:x + rw] = 255
    return m


class Server:
    def __init__(self, url: str, proc: subprocess.Popen, models_dir: Path, log: Path):
        self.url, self.proc, self.models_dir, self.log = url, proc, models_dir, log

    def post_fill(self, image: np.ndarray | bytes, mask: np.ndarray | bytes, path="/api/v1/inpaint", headers=None,
                  timeout=120, **fields):
        files = {"image": ("image.png", image if isinstance(image, bytes) else png(image), "image/png"),
                 "mask": ("mask.png", mask if isinstance(mask, bytes) else png(mask), "image/png")}
        return requests.post(self.url + path, files=files, data={k: str(v) for k, v in fields.items()},
                             headers=headers or {}, timeout=timeout)


def start_server(tmp: Path, *extra: str, command: tuple[str, ...] = ("-m", "backend.cli")) -> Server:
    port = free_port()
    models = tmp / "models"
    models.mkdir(exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    log = tmp / "server.log"  # a file, not a pipe: nobody reads a pipe, and a full one would stall the server
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, *command, "serve", "--port", str(port), "--device", "cpu", "--models-dir", str(models), *extra],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            requests.get(url + "/api/v1/health", timeout=1, headers={"Authorization": "Bearer secret-token"})
            return Server(url, proc, models, log)
        except requests.ConnectionError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start within 60 s")


def stop_server(server: Server) -> None:
    server.proc.terminate()
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        server.proc.kill()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("server"))
    yield s
    stop_server(s)


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch):
    """Tests never download: a torchvision weight file that is not in the torch hub cache stays missing."""
    def refuse(url, *args, **kwargs):
        raise ConnectionError(f"tests never download ({url})")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


@pytest.fixture
def one_torch_thread():
    """Models of many small convolutions: on a shared 2-core box one thread avoids OpenMP contention (4x faster here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
