"""The network part of a run, on a worker thread: encode each crop, run it as a backend job, decode the result.

libgimp is not thread-safe, so the GIMP side reads all pixels first, starts a FillJob, and only polls
`progress`/`message` from its main thread (to drive Gimp.progress) until the job ends; then it
writes each fill's `pieces` into a new layer (one fill per model compared and per variation's seed).
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
    source: bytes | None = None  # the painted sampling area, 1 byte per pixel (255 = may copy from); None: any


@dataclass(frozen=True)
class Piece:
    box: Box  # image coordinates of the changed pixels
    pixels: bytes  # R'G'B'A 8-bit of that box; alpha from the (grown, feathered) selection


@dataclass
class Fill:
    """One fill of every crop: with one model and seed, bound for one layer."""

    model: str  # as the backend reported it (X-Model), else as asked ("" = its default)
    seed: int | None  # as asked; None: the backend picked one
    pieces: list[Piece]


class FillJob(threading.Thread):
    def __init__(self, backend: Backend, settings: FillSettings, crops: list[Crop], watchdog=None, poll: float = 0.15,
                 runs: list[tuple[str, int | None]] | None = None):
        """runs: (model, seed) of each fill; default one fill with the settings' model, the backend's seed."""
        super().__init__(name="inpaint-fill", daemon=True)
        self.backend, self.settings, self.crops = backend, settings, crops
        self.runs = runs or [(settings.model, None)]
        self.watchdog, self.poll = watchdog, poll
        self.progress, self.message = 0.0, "Starting…"
        self.fills: list[Fill] = []
        self.error: BaseException | None = None
        self._cancel = threading.Event()

    @property
    def pieces(self) -> list[Piece]:
        """The first fill's pieces."""
        return self.fills[0].pieces if self.fills else []

    def cancel(self) -> None:
        self._cancel.set()

    def run(self) -> None:
        try:
            steps = len(self.runs) * len(self.crops)
            for r, (model, seed) in enumerate(self.runs):
                fill = Fill(model, seed, [])
                for i, crop in enumerate(self.crops):
                    piece, reported = self._fill(crop, r * len(self.crops) + i, steps, model, seed)
                    fill.model = reported or fill.model
                    if piece is not None:
                        fill.pieces.append(piece)
                self.fills.append(fill)
            self.progress, self.message = 1.0, "Done"
        except BaseException as e:  # handed to the main thread, which reports it
            self.error = e

    def _report(self, i: int, n: int, fraction: float, message: str) -> None:
        self.progress = (i + fraction) / n
        self.message = message if n == 1 else f"Step {i + 1} of {n}: {message}"

    def _fill(self, crop: Crop, i: int, n: int, model: str, seed: int | None) -> tuple[Piece | None, str | None]:
        x0, y0, x1, y1 = crop.box
        w, h = x1 - x0, y1 - y0
        self._report(i, n, 0.0, "sending…")
        image_png = png_codec.encode(crop.pixels, w, h, 4)
        mask_png = png_codec.encode(crop.mask, w, h, 1)
        source_png = None if crop.source is None else png_codec.encode(crop.source, w, h, 1)
        job = self.backend.submit(image_png, mask_png, self.settings.form_fields(model, seed), source_png)
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
            return None, result.model
        return Piece(offset(changed, x0, y0), cut(pixels, w, 4, changed)), result.model
