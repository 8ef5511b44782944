"""Jobs for long work: submit, poll progress, fetch the result, cancel."""
from __future__ import annotations

import time

from flask import Blueprint, current_app, jsonify

from backend.api.errors import ApiError, error_response
from backend.api.inpaint import job_accepted, parse_fill_request, queue_fill, result_response
from backend.jobs import CANCELLED, DONE, FAILED

bp = Blueprint("jobs", __name__)


def _job(job_id: str):
    job = current_app.extensions["inpaint"].worker.get(job_id)
    if job is None:
        raise ApiError(404, "unknown_job", f"no job '{job_id}' ({current_app.extensions['inpaint'].worker.retention()})")
    return job


@bp.post("/api/v1/jobs")
def submit():
    service = current_app.extensions["inpaint"]
    return job_accepted(queue_fill(service, parse_fill_request(service)))


@bp.get("/api/v1/jobs/<job_id>")
def status(job_id: str):
    return jsonify(_job(job_id).as_dict())


@bp.get("/api/v1/jobs/<job_id>/result")
def result(job_id: str):
    job = _job(job_id)
    if job.state == DONE:
        started = time.perf_counter() - (time.time() - job.created)
        return result_response(job.result, started)
    if job.state == FAILED:
        return error_response(job.error)
    if job.state == CANCELLED:
        raise ApiError(409, "cancelled", "the job was cancelled")
    raise ApiError(409, "not_ready", f"the job is {job.state} ({job.progress:.0%}); poll GET /api/v1/jobs/{job_id}")


@bp.delete("/api/v1/jobs/<job_id>")
def cancel(job_id: str):
    job = _job(job_id)
    current_app.extensions["inpaint"].worker.cancel_job(job)
    return jsonify(job.as_dict())
