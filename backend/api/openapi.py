"""The OpenAPI 3.1 document served at /api/v1/openapi.json (a test checks it against the real routes)."""
from __future__ import annotations

from flask import Blueprint, jsonify

from backend import __version__

bp = Blueprint("openapi", __name__)

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_PNG_RESULT = {
    "description": "the result PNG (JSON with a base64 PNG when Accept: application/json)",
    "headers": {name: {"schema": {"type": "string"}, "description": text} for name, text in {
        "X-Model": "model that ran", "X-Seed": "seed used", "X-Elapsed-Ms": "server time, decode to encode",
        "X-Engine-Ms": "time inside the engine", "X-Region": "x,y,w,h of the changed pixels",
        "X-Engine-Choices": "only when the engine chose per region (auto): the engine of each connected region, "
                            "comma-separated"}.items()},
    "content": {"image/png": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"$ref": "#/components/schemas/Result"}}},
}
_FIELDS = {
    "model": {"type": "string", "description": "engine or checkpoint id; default: the server's default"},
    "output": {"type": "string", "enum": ["layer", "image"], "default": "layer",
               "description": "layer: RGBA, filled pixels with alpha from the mask, transparent elsewhere; image: the composite"},
    "grow": {"type": "integer", "minimum": -1000, "maximum": 1000, "default": 0, "description": "px to grow (negative: shrink) the selection"},
    "feather": {"type": "integer", "minimum": 0, "maximum": 1000, "default": 0, "description": "px of soft edge"},
    "context": {"oneOf": [{"type": "integer", "minimum": 0}, {"const": "auto"}], "default": "auto",
                "description": "px of surrounding image the model sees around each region"},
    "seed": {"type": "integer", "minimum": -1, "default": -1, "description": "-1: random (reported in X-Seed)"},
    "blend": {"type": "string", "enum": ["alpha", "poisson"], "default": "alpha"},
    "options": {"type": "object", "description": "engine-specific options, as listed under 'params' in /models"},
    "source_preset": {"type": "string", "enum": ["around", "sides", "above_below"],
                      "description": "sampling area: known pixels within source_width of the hole, on every side, only "
                                     "left and right of it, or only above and below it (with 'source': both must hold). "
                                     "Used by engines that copy patches (patchmatch); the others ignore it"},
    "source_width": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 50,
                     "description": "px, the width of source_preset's band"},
    "fill_transparent": {"type": "integer", "enum": [0, 1], "default": 0,
                         "description": "1: the image's fully transparent pixels (alpha 0) are filled too, joined to "
                                        "the mask, which may then be left out; 422 no_transparent when there are none"},
}
_SOURCE = ("sampling area, the image's size: patches are copied only from where it is white (>= 50%; grey, or RGBA: "
           "alpha), default everywhere outside the hole. Used by engines that copy patches (patchmatch); the learned "
           "ones and diffusion ignore it. 422 source_too_small when it holds no whole patch inside the fill's context")
_FILL_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "required": ["image"], "properties": {
            "image": {"type": "string", "format": "binary", "description": "PNG, JPEG, WebP or TIFF; RGB(A); 8 or 16 bit"},
            "mask": {"type": "string", "format": "binary",
                     "description": "8-bit grey (or RGBA: alpha); 0 keep, 255 fill; required unless fill_transparent=1"},
            "source": {"type": "string", "format": "binary", "description": _SOURCE},
            **{k: (v if k != "options" else {"type": "string", "description": v["description"] + " (JSON text)"})
               for k, v in _FIELDS.items()}}}},
        "application/json": {"schema": {"type": "object", "required": ["image"], "properties": {
            "image": {"type": "string", "contentEncoding": "base64"},
            "mask": {"type": "string", "contentEncoding": "base64"},
            "source": {"type": "string", "contentEncoding": "base64", "description": _SOURCE}, **_FIELDS}}},
    },
}
_JOB_ID = [{"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_JOB = {"description": "job state", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Job"}}}}

DOCUMENT = {
    "openapi": "3.1.0",
    "info": {"title": "inpaint-backend", "version": __version__,
             "description": "Fill image selections with classical and learned inpainting engines. Every route answers "
                            "421 to a Host that is not one of the server's names and 403 to a request carrying an "
                            "Origin not allowed with --allowed-origin (web pages)."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "description": "required when the server was started with --token"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "detail"],
                      "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}},
            "Job": {"type": "object", "required": ["id", "state", "progress", "message"], "properties": {
                "id": {"type": "string"},
                "state": {"type": "string", "enum": ["queued", "running", "done", "failed", "cancelled"]},
                "progress": {"type": "number", "minimum": 0, "maximum": 1}, "message": {"type": "string"},
                "error": {"$ref": "#/components/schemas/Error"}}},
            "Result": {"type": "object", "properties": {
                "image": {"type": "string", "contentEncoding": "base64"}, "model": {"type": "string"},
                "seed": {"type": "integer"}, "elapsed_ms": {"type": "number"}, "engine_ms": {"type": "number"},
                "region": {"type": "array", "items": {"type": "integer"}},
                "choices": {"type": "array", "items": {"type": "string"},
                            "description": "only when the engine chose per region (auto): the engine of each"}}},
        },
    },
    "security": [{}, {"bearer": []}],
    "paths": {
        "/api/v1/health": {"get": {"summary": "version, device, torch version, loaded models",
                                   "responses": {"200": {"description": "server facts"}}}},
        "/api/v1/models": {"get": {"summary": "every engine and checkpoint with its status and size rules, and the default",
                                   "responses": {"200": {"description": "{default, models: [...]}"}}}},
        "/api/v1/inpaint": {"post": {"summary": "fill the selection and return the result",
                                     "parameters": [{"name": "Prefer", "in": "header", "schema": {"type": "string"},
                                                     "description": "respond-async: answer 202 with the job "
                                                                    "(as POST /api/v1/jobs) instead of waiting"}],
                                     "requestBody": _FILL_BODY,
                                     "responses": {"200": _PNG_RESULT, "202": _JOB, "400": _ERROR, "404": _ERROR, "409": _ERROR,
                                                   "413": _ERROR, "415": _ERROR, "422": _ERROR, "429": _ERROR}}},
        "/api/v1/jobs": {"post": {"summary": "queue a fill; answers 202 with the job",
                                  "requestBody": _FILL_BODY,
                                  "responses": {"202": _JOB, "400": _ERROR, "404": _ERROR, "413": _ERROR, "422": _ERROR,
                                                "429": _ERROR}}},
        "/api/v1/jobs/{job_id}": {
            "get": {"summary": "job state and progress", "parameters": _JOB_ID, "responses": {"200": _JOB, "404": _ERROR}},
            "delete": {"summary": "cancel the job", "parameters": _JOB_ID, "responses": {"200": _JOB, "404": _ERROR}},
        },
        "/api/v1/jobs/{job_id}/result": {"get": {"summary": "the result of a finished job", "parameters": _JOB_ID,
                                                 "responses": {"200": _PNG_RESULT, "404": _ERROR, "409": _ERROR}}},
        "/api/v1/openapi.json": {"get": {"summary": "this document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    },
}


@bp.get("/api/v1/openapi.json")
def openapi():
    return jsonify(DOCUMENT)
