"""GET /api/v1/health and GET /api/v1/models."""
from __future__ import annotations

import re
from typing import Any

import torch
from flask import Blueprint, current_app, jsonify, request

from backend import __version__
from backend.api.security import is_loopback

bp = Blueprint("models", __name__)


def device_facts(device: torch.device) -> dict:
    facts = {"type": device.type, "name": "CPU"}
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        facts.update(name=torch.cuda.get_device_name(device), vram_total_mb=total // 2**20, vram_free_mb=free // 2**20)
    elif device.type == "mps":
        facts["name"] = "Apple GPU (MPS)"
    return facts


# An absolute path (POSIX, Windows drive or share, home) inside a text: a card's description, data root or reason.
ABSOLUTE_PATH = re.compile(r"""(?<![\w:/.])(?:[A-Za-z]:[\\/]|\\\\|~[\\/]|/)[^\s"'<>|,;]*""")


def without_paths(value: Any) -> Any:
    """The listing with every absolute path cut to its last component: folder layouts and user names stay local."""
    if isinstance(value, str):
        return ABSOLUTE_PATH.sub(lambda m: re.split(r"[\\/]", m.group().rstrip("\\/"))[-1], value)
    if isinstance(value, dict):
        return {k: without_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_paths(v) for v in value]
    return value


@bp.get("/api/v1/health")
def health():
    service = current_app.extensions["inpaint"]
    return jsonify(status="ok", api_version=1, version=__version__, torch=torch.__version__,
                   device=device_facts(service.device), loaded_models=service.registry.loaded(),
                   default_model=service.registry.default, queued_jobs=service.worker.pending())


@bp.get("/api/v1/models")
def models():
    registry = current_app.extensions["inpaint"].registry
    entries = [entry.as_dict() for entry in registry.listings()]
    # Ready first; the general engines before the narrow ones (fixed small sizes, one kind of hole); classical first.
    entries.sort(key=lambda e: (e["status"] != "ready", not e["general"], e["kind"] != "classical"))
    if not is_loopback(request.remote_addr or ""):  # the user's own machine may see where its training data lives
        entries = without_paths(entries)
    return jsonify(default=registry.default, models=entries)
