"""POST /api/v1/inpaint: fill a selection and answer with the PNG (or JSON holding it)."""
from __future__ import annotations

import base64
import secrets
import time
from typing import Any

import numpy as np
from flask import Blueprint, Response, current_app, g, jsonify, request

from backend import jsonlimits
from backend.api.errors import ApiError, error_response
from backend.engines.base import shown, to_number
from backend.images import b64decode, decode_image, decode_mask, encode_png, probe
from backend.jobs import DONE, RETRY_AFTER_S
from backend.request import Blend, FillRequest, FillResult, Output, SourcePreset

bp = Blueprint("inpaint", __name__)

FIELDS = {"image", "mask", "model", "output", "grow", "feather", "context", "seed", "blend", "options",
          "source", "source_preset", "source_width", "fill_transparent"}
MAX_DEPTH = 16  # JSON nesting a request may have: the API's own is 2 (a body holding 'options')


def _int(fields: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = fields.get(name)
    if value is None or value == "":
        return default
    try:
        n = to_number(value, int)
    except (ValueError, OverflowError):
        raise ApiError(400, "bad_field", f"'{name}' must be an integer, got {shown(value)}") from None
    if not lo <= n <= hi:
        raise ApiError(400, "bad_field", f"'{name}' must be between {lo} and {hi}, got {n}")
    return n


def _choice(fields: dict[str, Any], name: str, enum_type, default):
    value = fields.get(name)
    if value is None or value == "":
        return default
    try:
        return enum_type(value)
    except ValueError:
        allowed = ", ".join(e.value for e in enum_type)
        raise ApiError(400, "bad_field", f"'{name}' must be one of {allowed}, got {shown(value)}") from None


def _flag(fields: dict[str, Any], name: str) -> bool:
    value = fields.get(name)
    if value in (None, "", False, 0, "0", "false", "False"):
        return False
    if value in (True, 1, "1", "true", "True"):
        return True
    raise ApiError(400, "bad_field", f"'{name}' must be 1 or 0 (true or false), got {shown(value)}")


def _options(value: Any) -> dict[str, Any]:
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = jsonlimits.loads(value, MAX_DEPTH)
        except ValueError as e:
            raise ApiError(400, "bad_field", f"'options' must be a JSON object: {e}") from None
    if not isinstance(value, dict):
        raise ApiError(400, "bad_field", "'options' must be a JSON object")
    return value


def parse_fill_request(service) -> FillRequest:
    """Read a multipart or JSON request into a FillRequest, rejecting anything malformed with a 4xx."""
    limit = service.config.max_pixels
    if request.is_json:
        try:
            fields = jsonlimits.loads(request.get_data(), MAX_DEPTH)
        except ValueError as e:
            raise ApiError(400, "bad_request", f"the body is not valid JSON: {e}") from None
        if not isinstance(fields, dict):
            raise ApiError(400, "bad_request", "the body is not a JSON object")
        if "image" not in fields:
            raise ApiError(400, "missing_field", "'image' is required (base64 image)")
        parts = {name: b64decode(fields[name], name) for name in ("image", "mask", "source") if name in fields}
    elif request.mimetype == "multipart/form-data":
        fields = request.form.to_dict()
        if None in fields or None in request.files:
            raise ApiError(400, "bad_request", "a form part has no name (Content-Disposition: form-data; name=\"...\")")
        if "image" not in request.files:
            raise ApiError(400, "missing_field", "'image' is required as a file part")
        parts = {name: request.files[name].read() for name in ("image", "mask", "source") if name in request.files}
    else:
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data or application/json")
    unknown = sorted(set(fields) - FIELDS)
    if unknown:
        raise ApiError(400, "bad_field", f"unknown field(s): {', '.join(unknown)}")
    fill_transparent = _flag(fields, "fill_transparent")
    if "mask" not in parts and not fill_transparent:  # with it, the image's transparent pixels may be the whole hole
        raise ApiError(400, "missing_field", "'mask' is required (an image part; optional with fill_transparent=1)")

    model = fields.get("model")
    if model is not None and not isinstance(model, str):
        raise ApiError(400, "bad_field", f"'model' must be a string, got {shown(model)}")
    model = service.check_model(model or None)
    context = fields.get("context")
    ctx = None if context in (None, "", "auto") else _int(fields, "context", 0, 0, 8192)
    seed = _int(fields, "seed", -1, -1, 2**31 - 1)
    w, h, _ = probe(parts["image"], "image", limit)
    service.worker.check_room(w * h)  # a full queue refuses before spending memory on the pixels
    image = decode_image(parts["image"], limit, "image")
    mask = decode_mask(parts["mask"], limit, "mask") if "mask" in parts else np.zeros(image.shape[:2], np.float32)
    source = decode_mask(parts["source"], limit, "source") if "source" in parts else None
    for name, arr in (("mask", mask), ("source", source)):
        if arr is not None and arr.shape != image.shape[:2]:
            raise ApiError(400, "size_mismatch", f"image is {image.shape[1]}x{image.shape[0]} but {name} is "
                                                 f"{arr.shape[1]}x{arr.shape[0]}; they must match")
    req = FillRequest(
        image=image,
        mask=mask,
        model=model,
        output=_choice(fields, "output", Output, Output.LAYER),
        grow=_int(fields, "grow", 0, -1000, 1000),
        feather=_int(fields, "feather", 0, 0, 1000),
        context=ctx,
        seed=secrets.randbelow(2**31 - 1) if seed < 0 else seed,
        blend=_choice(fields, "blend", Blend, Blend.ALPHA),
        params=_options(fields.get("options")),
        source=source,
        source_preset=_choice(fields, "source_preset", SourcePreset, None),
        source_width=_int(fields, "source_width", 50, 1, 10000),
        fill_transparent=fill_transparent,
    )
    longest = max(req.mask.shape)
    for name, px in (("grow", req.grow), ("feather", req.feather)):
        if abs(px) > longest:  # past the image's longer side it only selects everything (or nothing)
            raise ApiError(400, "bad_field", f"'{name}' is {px} px, more than the image's longer side ({longest} px)")
    service.engine(model).parse_params(req.params)  # bad options fail now, not in the queue
    g.fill_request = req  # for the request's log line
    return req


def result_response(result: FillResult, started: float) -> Response:
    """Encode the result; `started` is the perf_counter() reading when the request arrived."""
    png = encode_png(result.pixels)
    result.elapsed_ms = (time.perf_counter() - started) * 1000
    x, y, w, h = result.region
    facts = {"model": result.model, "seed": result.seed, "elapsed_ms": round(result.elapsed_ms, 1),
             "engine_ms": round(result.engine_ms, 1), "region": [x, y, w, h]}
    if result.choices:
        facts["choices"] = result.choices
    if request.accept_mimetypes.best_match(["image/png", "application/json"]) == "application/json" \
            and "application/json" in request.accept_mimetypes.values():
        return jsonify(image=base64.b64encode(png).decode("ascii"), **facts)
    resp = Response(png, mimetype="image/png")
    resp.headers.update({
        "X-Model": result.model, "X-Seed": str(result.seed), "X-Elapsed-Ms": f"{result.elapsed_ms:.1f}",
        "X-Engine-Ms": f"{result.engine_ms:.1f}", "X-Region": f"{x},{y},{w},{h}",
    })
    if result.choices:  # e.g. auto: which engine filled each selected region
        resp.headers["X-Engine-Choices"] = ",".join(result.choices)
    return resp


def prefers_async() -> bool:
    """`Prefer: respond-async` (RFC 7240): answer 202 with the job instead of waiting for the fill."""
    prefs = (p.split(";")[0].split("=")[0].strip().lower() for p in request.headers.get("Prefer", "").split(","))
    return "respond-async" in prefs


def job_accepted(job) -> Response:
    """202 with the job's state and its URL in Location."""
    resp = jsonify(job.as_dict())
    resp.status_code = 202
    resp.headers["Location"] = f"/api/v1/jobs/{job.id}"
    return resp


def queue_fill(service, req: FillRequest, keep: bool = True):
    return service.worker.submit(lambda progress: service.fill(req, progress), pixels=req.mask.size, keep=keep)


@bp.post("/api/v1/inpaint")
def inpaint():
    service = current_app.extensions["inpaint"]
    start = time.perf_counter()
    if prefers_async():  # queued like POST /api/v1/jobs: it holds no thread while it runs
        resp = job_accepted(queue_fill(service, parse_fill_request(service)))
        resp.headers["Preference-Applied"] = "respond-async"
        return resp
    # A waiting call holds a server thread: past the limit it is refused, so health, polling and cancel always get one.
    if not service.waiting_fills.acquire(blocking=False):
        raise ApiError(429, "busy", f"{service.config.max_waiting_fills} synchronous fills are already waiting: retry "
                                    "later, or queue it with POST /api/v1/jobs", RETRY_AFTER_S)
    try:
        req = parse_fill_request(service)
        job = queue_fill(service, req, keep=False)
        # waitress sets this (with channel_request_lookahead) to tell when the client has hung up.
        gone = request.environ.get("waitress.client_disconnected")
        while not job.done.wait(0.2):
            if gone is not None and gone():
                service.worker.cancel_job(job)
                return jsonify(error="cancelled", detail="the client disconnected"), 409
    finally:
        service.waiting_fills.release()
    if job.state != DONE:
        return error_response(job.error) if job.error else (jsonify(error="cancelled", detail=job.message), 409)
    return result_response(job.result, start)
