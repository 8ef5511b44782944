"""Checkpoint discovery: new files show up without a restart, bad ones are listed as broken."""
from __future__ import annotations

import io
import json
import os
import time

import numpy as np
import pytest
import torch
from conftest import decode, photo_like, png, rect_mask
from safetensors.torch import save_file

from backend.app import create_app
from backend.engines import registry as registry_module
from backend.engines.base import Engine
from backend.service import ServerConfig


class ConstantEngine(Engine):
    """A 'learned' engine whose only weight is the colour it paints."""

    method = "constant"
    kind = "learned"

    def __init__(self, name, weights, meta, device):
        super().__init__(device)
        from safetensors.torch import load_file

        self.id = name
        self.colour = load_file(str(weights))["colour"].view(1, 3, 1, 1)

    def inpaint(self, image, hole, options, progress):
        return image * (1 - hole) + self.colour * hole


@pytest.fixture
def client(tmp_path, monkeypatch):
    monkeypatch.setitem(registry_module.CHECKPOINT_METHODS, "constant", ConstantEngine)
    app = create_app(ServerConfig(models_dir=tmp_path))
    return app.test_client(), tmp_path


def write_checkpoint(folder, name, colour):
    save_file({"colour": torch.tensor(colour)}, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps({"method": "constant", "metrics": {"psnr": 20.0}}))


def fill(c, model):
    img, mask = photo_like(32, 32), rect_mask(32, 32, (8, 8, 8, 8))
    return c.post("/api/v1/inpaint", data={"image": (io.BytesIO(png(img)), "i.png"), "mask": (io.BytesIO(png(mask)), "m.png"),
                                           "model": model, "output": "image"})


def test_new_checkpoint_is_served_without_restart(client):
    c, folder = client
    assert "red" not in [m["id"] for m in c.get("/api/v1/models").json["models"]]
    write_checkpoint(folder, "red", [1.0, 0.0, 0.0])
    entry = next(m for m in c.get("/api/v1/models").json["models"] if m["id"] == "red")
    assert entry["status"] == "ready" and entry["kind"] == "learned" and entry["metrics"] == {"psnr": 20.0}
    r = fill(c, "red")
    assert r.status_code == 200
    assert (decode(r.data)[8:16, 8:16] == [255, 0, 0]).all()
    # Overwriting the checkpoint (new training step) serves the new weights.
    time.sleep(0.01)
    write_checkpoint(folder, "red", [0.0, 0.0, 1.0])
    os.utime(folder / "red.json", (time.time() + 5, time.time() + 5))
    assert (decode(fill(c, "red").data)[8:16, 8:16] == [0, 0, 255]).all()
    assert "red" in c.get("/api/v1/health").json["loaded_models"]


def test_corrupt_weights_are_reported_broken(client):
    c, folder = client
    (folder / "bad.safetensors").write_bytes(b"this is not safetensors")
    (folder / "bad.json").write_text(json.dumps({"method": "constant"}))
    r = fill(c, "bad")
    assert r.status_code == 409 and "failed to load" in r.json["detail"]
    entry = next(m for m in c.get("/api/v1/models").json["models"] if m["id"] == "bad")
    assert entry["status"] == "broken" and "failed to load" in entry["reason"]
    (folder / "gone.json").write_text(json.dumps({"method": "constant"}))
    entry = next(m for m in c.get("/api/v1/models").json["models"] if m["id"] == "gone")
    assert entry["status"] == "broken" and "missing" in entry["reason"]
