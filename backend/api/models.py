"""GET /api/v1/health and GET /api/v1/models."""
from __future__ import annotations

import torch
from flask import Blueprint, current_app, jsonify

from backend import __version__

bp = Blueprint("models", __name__)


def device_facts(device: torch.device) -> dict:
    facts = {"type": device.type, "name": "CPU"}
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        facts.update(name=torch.cuda.get_device_name(device), vram_total_mb=total // 2**20, vram_free_mb=free // 2**20)
    elif device.type == "mps":
        facts["name"] = "Apple GPU (MPS)"
    return facts


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
    entries.sort(key=lambda e: (e["status"] != "ready", e["kind"] != "classical"))
    return jsonify(default=registry.default, models=entries)
