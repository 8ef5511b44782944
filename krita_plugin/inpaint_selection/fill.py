"""One fill, in three steps that never mix threads.

capture (UI thread): read the selection and the pixels of just the crop it needs.
run (worker thread): encode, send one job per model, follow progress, decode.
apply (UI thread): add the results as new layers above the source, nothing else.

Only capture and apply touch the document, through the DocumentAccess methods that
krita_api.KritaDocument implements and tests fake.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from . import png
from .client import BackendError, Client, Result
from .geometry import Rect, crop_for_selection
from .messages import EVERYTHING_SELECTED, NO_DOCUMENT, NO_SAMPLE_NODE, NOTHING_SELECTED, Refused
from .pixels import Depth, Rgba, UnsupportedFormat, area_of, count_selected, crop_rgba, depth_of, from_rgba, to_rgba
from .settings import SampleFrom, Settings, Source

POLL_SECONDS = 0.15
FINAL_STATES = ("done", "failed", "cancelled")


@dataclass
class NewLayer:
    name: str
    rect: Rect  # where its pixels go, in canvas coordinates
    data: bytes  # Krita's raw layout for the document's depth


class DocumentAccess(Protocol):
    def size(self) -> tuple[int, int]: ...
    def color(self) -> tuple[str, str]: ...  # (colour model, depth), e.g. ("RGBA", "U8")
    def selection_bounds(self) -> Rect | None: ...
    def selection_mask(self, rect: Rect) -> bytes: ...  # 1 byte per pixel, 0..255
    def read_pixels(self, rect: Rect, source: Source) -> bytes: ...
    # The node named `name`: ("mask", 1 byte per pixel) for a selection mask, ("layer", pixels in the document's
    # layout) for a layer; None when there is none by that name.
    def read_node(self, name: str, rect: Rect) -> tuple[str, bytes] | None: ...
    def add_layers(self, layers: list[NewLayer], group: str | None) -> None: ...
    def is_open(self) -> bool: ...


@dataclass
class Snapshot:
    doc: DocumentAccess
    crop: Rect
    depth: Depth
    pixels: bytes
    mask: bytes
    source: bytes | None = None  # the painted sampling area, 0/255 per pixel; None: the settings' preset or all


def layer_name(model: str, seed: int | None = None) -> str:
    return f"Inpaint: {model}" if seed is None else f"Inpaint: {model} seed {seed}"


def group_name(count: int) -> str:
    return f"Inpaint compare ({count} models)"


def variations_group_name(count: int) -> str:
    return f"Inpaint variations ({count} seeds)"


def _painted_area(doc: DocumentAccess, settings: Settings, crop: Rect, depth: Depth) -> bytes:
    name = settings.sample_node.strip()
    if not name:
        raise Refused(NO_SAMPLE_NODE)
    found = doc.read_node(name, crop)
    if found is None:
        raise Refused(f"There is no layer or selection mask named '{name}' to sample from. "
                      "Type the name of the layer (or selection mask) painted over the area to copy from.")
    kind, data = found
    area = area_of(data, crop.w, crop.h, None if kind == "mask" else depth)
    if not any(area):
        raise Refused(f"'{name}' covers nothing near the selection: paint the area to copy from on it "
                      "(more than half opaque), close enough to lie within the fill's context.")
    return area


def capture(doc: DocumentAccess | None, settings: Settings, minimum: int = 1) -> Snapshot:
    """Read what one fill needs, or raise Refused with the reason in plain words."""
    if doc is None:
        raise Refused(NO_DOCUMENT)
    try:
        depth = depth_of(*doc.color())
    except UnsupportedFormat as e:
        raise Refused(f"Cannot fill: {e}.") from None
    width, height = doc.size()
    canvas = Rect(0, 0, width, height)
    bounds = doc.selection_bounds()
    if settings.fill_transparent:
        # The transparent areas may be anywhere (canvas extension: along the borders): send the whole canvas,
        # and the selection, if any, with it.
        crop = canvas
        mask = doc.selection_mask(crop) if bounds is not None else bytes(crop.area)
    else:
        if bounds is None or bounds.intersect(canvas).empty:
            raise Refused(NOTHING_SELECTED)
        crop = crop_for_selection(bounds, canvas, settings.grow, settings.feather, settings.context, minimum)
        mask = doc.selection_mask(crop)
        selected, _ = count_selected(mask)
        if selected == 0:
            raise Refused(NOTHING_SELECTED)
        if selected == len(mask):  # only happens when the crop is the whole canvas
            raise Refused(EVERYTHING_SELECTED)
    source = _painted_area(doc, settings, crop, depth) if settings.sample is SampleFrom.PAINTED else None
    return Snapshot(doc, crop, depth, doc.read_pixels(crop, settings.source), mask, source)


Progress = Callable[[float, str], None]
Decoder = Callable[[bytes], Rgba]


def _follow(client: Client, job: dict, progress: Progress, cancelled: threading.Event) -> Result:
    """Poll one job to its end; on cancel, ask the backend to drop it too."""
    job_id = str(job["id"])
    while job.get("state") not in FINAL_STATES:
        if cancelled.wait(POLL_SECONDS):
            try:
                client.cancel(job_id)
            except BackendError:
                pass  # the job may have finished meanwhile; nothing to undo
            raise BackendError("cancelled", "cancelled by the user")
        job = client.job(job_id)
        progress(float(job.get("progress") or 0.0), str(job.get("message") or ""))
    if job["state"] == "failed":
        err = job.get("error") or {}
        raise BackendError(str(err.get("error") or "failed"), str(err.get("detail") or job.get("message") or ""))
    if job["state"] == "cancelled":
        raise BackendError("cancelled", "the job was cancelled on the server")
    return client.result(job_id)


def run(snapshot: Snapshot, client: Client, settings: Settings, models: list[str], decode: Decoder,
        progress: Progress, cancelled: threading.Event, seeds: list[int] | None = None) -> list[NewLayer]:
    """Fill the snapshot once per model ("" = the backend's default) and seed (None: the backend picks one);
    returns the layers to add, in order. With several seeds each layer's name carries its seed."""
    crop = snapshot.crop
    rgba = to_rgba(snapshot.pixels, crop.w, crop.h, snapshot.depth)
    image_png = png.encode(rgba.samples, crop.w, crop.h, png.RGBA, rgba.bits)
    mask_png = png.encode(snapshot.mask, crop.w, crop.h, png.GREY, 8)
    source_png = None if snapshot.source is None else png.encode(snapshot.source, crop.w, crop.h, png.GREY, 8)
    runs = [(model, seed) for model in (models or [""]) for seed in (seeds or [None])]
    named_by_seed = len(seeds or []) > 1
    layers = []
    for i, (model, seed) in enumerate(runs):
        if cancelled.is_set():
            raise BackendError("cancelled", "cancelled by the user")
        label = (model or "default model") + (f" seed {seed}" if named_by_seed else "")

        def step(fraction: float, message: str, i=i, label=label) -> None:
            progress((i + fraction) / len(runs), f"{label}: {message}" if message else label)

        step(0.0, "sending")
        job = client.submit(image_png, mask_png, settings.fields_for(model, seed), source_png)
        result = _follow(client, job, step, cancelled)
        image = decode(result.png)
        if (image.width, image.height) != (crop.w, crop.h):
            raise BackendError("bad_response", f"it answered a {image.width}x{image.height} image "
                                               f"for a {crop.w}x{crop.h} area")
        x, y, w, h = _inside(result.region, crop)
        data = from_rgba(crop_rgba(image, x, y, w, h), snapshot.depth)
        name = layer_name(result.model or model or "default", (result.seed if result.seed is not None else seed)
                          if named_by_seed else None)
        layers.append(NewLayer(name, Rect(crop.x + x, crop.y + y, w, h), data))
    progress(1.0, "adding layers")
    return layers


def _inside(region: tuple[int, int, int, int] | None, crop: Rect) -> tuple[int, int, int, int]:
    """The changed area the backend reported (X-Region), or the whole crop if it is missing or odd."""
    if region is not None:
        x, y, w, h = region
        if w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= crop.w and y + h <= crop.h:
            return region
    return 0, 0, crop.w, crop.h


def apply(snapshot: Snapshot, layers: list[NewLayer], group: str | None) -> None:
    """Add the layers above the source, in a group named `group` (None: none)."""
    if not snapshot.doc.is_open():
        raise Refused("The image was closed while the fill was running; nothing was added.")
    snapshot.doc.add_layers(layers, group)
