"""Every failure becomes JSON {"error": code, "detail": text} with a 4xx/5xx status."""
from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from backend.engines.base import OptionError
from backend.engines.region import MaskError
from backend.engines.registry import UnknownModel
from backend.images import ImageError
from backend.jobs import RETRY_AFTER_S, JobError, QueueFull

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, detail: str, retry_after: int | None = None):
        super().__init__(detail)
        self.status, self.code, self.detail, self.retry_after = status, code, detail, retry_after


def classify(e: Exception) -> JobError:
    """Map an exception from request parsing or model work to what the client is told."""
    if isinstance(e, ApiError):
        return JobError(e.code, e.detail, e.status, e.retry_after)
    if isinstance(e, QueueFull):
        return JobError("queue_full", str(e), 429, RETRY_AFTER_S)
    if isinstance(e, ImageError):
        return JobError(e.code, e.detail, e.status)
    if isinstance(e, MaskError):
        return JobError(e.code, e.detail, 422)
    if isinstance(e, OptionError):
        return JobError("bad_field", str(e), 400)
    if isinstance(e, UnknownModel):
        return JobError("unknown_model", f"no model '{e.args[0]}'; GET /api/v1/models lists them", 404)
    if isinstance(e, ModelNotReady):
        return JobError("model_not_ready", str(e), 409)
    log.exception("internal error")
    return JobError("internal", f"{type(e).__name__}: {e}", 500)


class ModelNotReady(RuntimeError):
    """The model exists but is untrained or broken."""


def error_response(err: JobError):
    resp = jsonify({"error": err.code, "detail": err.detail})
    resp.status_code = err.status
    if err.retry_after is not None:
        resp.headers["Retry-After"] = str(err.retry_after)
    return resp


def install(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        code = {404: "not_found", 405: "method_not_allowed", 413: "upload_too_large"}.get(e.code or 500, "http_error")
        detail = e.description or e.name
        if e.code == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            if limit and (request.content_length or 0) > limit:
                detail = f"the upload exceeds the server's limit of {limit // 2**20} MiB"
            else:  # the form parser's own limits (it does not say which one it hit)
                field = request.max_form_memory_size
                detail = f"the form exceeds the server's limits: at most {request.max_form_parts} parts" + (
                    f", and {field // 1000} kB for each field that is not a file" if field else "")
        return error_response(JobError(code, detail, e.code or 500))

    @app.errorhandler(Exception)
    def _any(e: Exception):
        return error_response(classify(e))
