"""Checkpoint discovery: new files show up without a restart, bad ones are listed as broken."""
from __future__ import annotations

import io
import json
import os
import time

import pytest
import torch
from conftest import decode, photo_like, png, rect_mask

import tiny_method
from backend.app import create_app
from backend.service import ServerConfig
from backend.training import checkpoint


@pytest.fixture
def client(tmp_path):
    app = create_app(ServerConfig(models_dir=tmp_path))
    return app.test_client(), tmp_path


def write_checkpoint(folder, name, colour):
    """A tiny-method checkpoint whose output is one flat colour: last layer zero, bias saturating the sigmoid."""
    net = tiny_method.TinyNet(width=16)
    with torch.no_grad():
        net.out.weight.zero_()
        net.out.bias.copy_(torch.tensor(colour) * 40 - 20)
    tensors = checkpoint.network_tensors({"generator": net})
    config = dict(tiny_method.TinyMethod.recipes["paper"])
    checkpoint.export(folder / name, tensors, {"method": "tiny", "config": config, "metrics": {"psnr": 20.0}})


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
    assert entry["size"] == {"multiple": 8, "minimum": 8, "native": 32, "fixed": False}
    r = fill(c, "red")
    assert r.status_code == 200
    red = decode(r.data)[8:16, 8:16].astype(int)
    assert (red[..., 0] > red[..., 2] + 150).all()  # red, give or take the border tone match
    # Overwriting the checkpoint (new training step) serves the new weights.
    time.sleep(0.01)
    write_checkpoint(folder, "red", [0.0, 0.0, 1.0])
    os.utime(folder / "red.json", (time.time() + 5, time.time() + 5))
    blue = decode(fill(c, "red").data)[8:16, 8:16].astype(int)
    assert (blue[..., 2] > blue[..., 0] + 150).all()
    assert "red" in c.get("/api/v1/health").json["loaded_models"]


def test_corrupt_weights_are_reported_broken(client):
    c, folder = client
    (folder / "bad.safetensors").write_bytes(b"this is not safetensors")
    (folder / "bad.json").write_text(json.dumps({"method": "tiny", "config": {"width": 16}}))
    r = fill(c, "bad")
    assert r.status_code == 409 and "failed to load" in r.json["detail"]
    entry = next(m for m in c.get("/api/v1/models").json["models"] if m["id"] == "bad")
    assert entry["status"] == "broken" and "failed to load" in entry["reason"]
    (folder / "gone.json").write_text(json.dumps({"method": "tiny", "config": {}}))
    entry = next(m for m in c.get("/api/v1/models").json["models"] if m["id"] == "gone")
    assert entry["status"] == "broken" and "missing" in entry["reason"]


def test_models_hides_local_paths_from_clients_off_loopback(client):
    c, folder = client
    write_checkpoint(folder, "mine", [1.0, 0.0, 0.0])
    card = json.loads((folder / "mine.json").read_text())
    card.update(description="Tiny. Trained on /home/ann/photos.",
                training={"data": {"root": "/home/ann/photos", "val_files": ["val/a.jpg"]}})
    card["config"]["features_path"] = "C:\\Users\\ann\\vgg.h5"
    (folder / "mine.json").write_text(json.dumps(card))
    local = next(m for m in c.get("/api/v1/models").json["models"] if m["id"] == "mine")
    assert local["training"]["data"]["root"] == "/home/ann/photos"  # the user's own machine
    remote = c.get("/api/v1/models", environ_base={"REMOTE_ADDR": "192.0.2.7"}).json
    assert "ann" not in json.dumps(remote)
    entry = next(m for m in remote["models"] if m["id"] == "mine")
    assert entry["status"] == "ready" and entry["description"] == "Tiny. Trained on photos."
    assert entry["training"]["data"] == {"root": "photos", "val_files": ["val/a.jpg"]}
    assert entry["config"]["features_path"] == "vgg.h5"
