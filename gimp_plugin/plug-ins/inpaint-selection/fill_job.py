"""The network part of a run, on a worker thread: encode each crop, run it as a backend job, decode the result.

libgimp is not thread-safe, so the GIMP side reads all pixels first, starts a FillJob, and only polls
`progress`/`message` from its main thread (to drive Gimp.progress) until the job ends; then it
writes `pieces` into a new layer.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import png_codec
from backend_client import Backend, BackendError, job_failure
from fill_settings import FillSettings
from selection_geometry import Box, cut, offset, parse_region


@dataclass(frozen=True)
class Crop:
    box: Box  # image coordinates
    pixels: bytes  # R'G'B'A 8-bit, box-sized
    mask: bytes  # 1 byte per pixel, box-sized; 0 keep, 255 fill


@dataclass(frozen=True)
class Piece:
    box: Box  # image coordinates of the changed pixels
    pixels: bytes  # R'G'B'A 8-bit of that box; alpha from the (grown, feathered) selection


class FillJob(threading.Thread):
    def __init__(self, backend: Backend, settings: FillSettings, crops: list[Crop], watchdog=None, poll: float = 0.15):
        super().__init__(name="inpaint-fill", daemon=True)
        self.backend, self.settings, self.crops = backend, settings, crops
        self.watchdog, self.poll = watchdog, poll
        self.progress, self.message = 0.0, "Starting…"
        self.pieces: list[Piece] = []
        self.error: BaseException | None = None
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        try:
            for i, crop in enumerate(self.crops):
                piece = self._fill(crop, i, len(self.crops))
                if piece is not None:
                    self.pieces.append(piece)
            self.progress, self.message = 1.0, "Done"
        except BaseException as e:  # handed to the main thread, which reports it
            self.error = e

    def _report(self, i: int, n: int, fraction: float, message: str) -> None:
        self.progress = (i + fraction) / n
        self.message = message if n == 1 else f"Region {i + 1} of {n}: {message}"

    def _fill(self, crop: Crop, i: int, n: int) -> Piece | None:
        x0, y0, x1, y1 = crop.box
        w, h = x1 - x0, y1 - y0
        self._report(i, n, 0.0, "sending…")
        image_png = png_codec.encode(crop.pixels, w, h, 4)
        mask_png = png_codec.encode(crop.mask, w, h, 1)
        job = self.backend.submit(image_png, mask_png, self.settings.form_fields())
        job_id = job["id"]
        if self.watchdog:
            self.watchdog.started(job_id)
        try:
            while job["state"] not in ("done", "failed", "cancelled"):
                if self._cancel.is_set():
                    self.backend.cancel(job_id)
                    raise BackendError("The fill was cancelled.", "cancelled")
                self._report(i, n, 0.05 + 0.8 * float(job.get("progress", 0)), job.get("message") or job["state"])
                time.sleep(self.poll)
                job = self.backend.job(job_id)
            if job["state"] != "done":
                raise job_failure(job)
            self._report(i, n, 0.85, "receiving the result…")
            result = self.backend.result(job_id)
        finally:
            if self.watchdog:
                self.watchdog.finished(job_id)
        pixels, rw, rh, channels = png_codec.decode(result.png)
        if (rw, rh) != (w, h) or channels != 4:
            raise BackendError(f"The backend answered a {rw}x{rh} image with {channels} channels "
                               f"for a {w}x{h} RGBA crop.", "http_error")
        changed = parse_region(result.region, w, h)
        if changed is None:
            return None
        return Piece(offset(changed, x0, y0), cut(pixels, w, 4, changed))
