"""Checkpoint discovery: new files show up without a restart, bad ones are listed as broken."""
from __future__ import annotations

import io
import json
import os
import time

import pytest
import requests
import torch
from conftest import decode, photo_like, png, rect_mask
from safetensors.torch import save_file

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


def _nfgan_card(**changes) -> str:
    return json.dumps({"method": "nfgan", "config": {"size": 64}, "description": "crafted", **changes})


def _weights(folder, name, nets=("generator",)):
    save_file({f"{net}.w": torch.zeros(2) for net in nets}, str(folder / f"{name}.safetensors"))


def _crafted(case: str, folder, outside):
    """Write one crafted checkpoint named `case` into folder (its link targets into `outside`)."""
    card = folder / f"{case}.json"
    if case == "config_list":
        card.write_text(_nfgan_card(config=[1, 2]))
    elif case == "config_null":
        card.write_text(_nfgan_card(config=None))
    elif case == "size_abc":
        card.write_text(_nfgan_card(config={"size": "abc"}))
    elif case == "nfgan_size_0":
        card.write_text(_nfgan_card(config={"size": 0}))
    elif case == "deep":
        card.write_text('{"method": "nfgan", "config": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif case == "deep_within_the_parser":
        card.write_text(_nfgan_card(config={"size": 64, "x": json.loads("[" * 900 + "]" * 900)}))
    elif case == "fifo":
        os.mkfifo(card)
    elif case == "link_out":
        (outside / "card.json").write_text(_nfgan_card())
        card.symlink_to(outside / "card.json")
    elif case == "huge":
        card.write_text(_nfgan_card(description="x" * (2 << 20)))
    elif case == "description_list":
        card.write_text(_nfgan_card(description=["x"]))
    elif case == "training_list":
        card.write_text(_nfgan_card(training=[1]))
    else:
        card.write_text(_nfgan_card())
        weights = folder / f"{case}.safetensors"
        if case == "weights_fifo":
            os.mkfifo(weights)
        elif case == "weights_link_out":
            _weights(outside, "w")
            weights.symlink_to(outside / "w.safetensors")
        elif case == "weights_without_the_generator":
            _weights(folder, case, nets=("discriminator",))
        elif case == "weights_header_garbage":
            weights.write_bytes(b"\xff" * 8 + b"{}")
    if case not in ("weights_fifo", "weights_link_out", "weights_without_the_generator", "weights_header_garbage"):
        _weights(folder, case)


@pytest.mark.parametrize("case, reason", [
    ("config_list", "'config' must be a JSON object"), ("config_null", "'config' must be a JSON object"),
    ("size_abc", "config 'size'"), ("nfgan_size_0", "config 'size'"), ("deep", "nested deeper"),
    ("deep_within_the_parser", "nested deeper than 32"), ("fifo", "not a regular file"),
    ("link_out", "outside the models folder"), ("huge", "over 1024 KiB"),
    ("description_list", "'description' must be a string"), ("training_list", "'training' must be a JSON object"),
    ("weights_fifo", "not a regular file"), ("weights_link_out", "outside the models folder"),
    ("weights_without_the_generator", "holds no 'generator' network"), ("weights_header_garbage", "failed to load"),
])
def test_crafted_model_file_is_listed_broken_while_fills_go_on(server, tmp_path, case, reason):
    _crafted(case, server.models_dir, tmp_path)
    _crafted("good", server.models_dir, tmp_path)
    try:
        r = requests.get(server.url + "/api/v1/models", timeout=10)
        assert r.status_code == 200, r.text
        models = {m["id"]: m for m in r.json()["models"]}
        assert models[case]["status"] == "broken" and reason in models[case]["reason"], models[case]
        assert models["good"]["status"] == "ready", models["good"]  # the checks refuse only what is wrong
        img, mask = photo_like(32, 32), rect_mask(32, 32, (8, 8, 8, 8))
        assert server.post_fill(img, mask, model="diffusion", timeout=30).status_code == 200
        assert server.post_fill(img, mask, timeout=30).status_code == 200  # the default engine too
        r = server.post_fill(img, mask, model=case, timeout=30)
        assert r.status_code == 409 and r.json()["error"] == "model_not_ready" and reason in r.json()["detail"]
    finally:
        for p in server.models_dir.iterdir():
            p.unlink()


def test_cards_are_read_again_only_when_they_change(client, monkeypatch):
    from backend.engines.registry import Registry

    c, folder = client
    write_checkpoint(folder, "red", [1.0, 0.0, 0.0])
    reads = []
    original = Registry._read_meta
    monkeypatch.setattr(Registry, "_read_meta", lambda self, path: reads.append(path.name) or original(self, path))
    for _ in range(3):
        assert c.get("/api/v1/models").status_code == 200
        assert fill(c, "red").status_code == 200
    assert reads == ["red.json"]
    card = folder / "red.json"
    card.write_text(card.read_text().replace('"psnr": 20.0', '"psnr": 21.0'))
    entry = next(m for m in c.get("/api/v1/models").json["models"] if m["id"] == "red")
    assert entry["metrics"] == {"psnr": 21.0} and reads == ["red.json", "red.json"]


def test_summary_reads_what_the_card_has_and_ignores_what_is_malformed():
    from backend.engines.cards import summary

    assert summary("x", {}) == ""
    card = {"good_for": "small selections, up to about 64 px", "training": {"data": {"train_photos": 12}, "steps": 900},
            "eval": {"size": 24, "summary": {"centre 1/9": {"x": {"psnr": 21.0}, "telea": {"psnr": 19.5}}}}}
    assert summary("x", card) == "small selections, up to about 64 px · +1.5 dB vs Telea (1 bucket, 24 px) · 12 photos · 900 steps"
    broken = {"training": {"data": "many", "steps": "lots", "hours": True},
              "eval": {"summary": {"b": {"x": {"psnr": "high"}, "telea": {"psnr": 19.5}}, "c": [1]}}}
    assert summary("x", broken) == ""


def test_card_with_a_mistyped_good_for_is_broken(client):
    c, folder = client
    write_checkpoint(folder, "odd", [0.5, 0.5, 0.5])
    card = json.loads((folder / "odd.json").read_text())
    card["good_for"] = ["a", "list"]
    (folder / "odd.json").write_text(json.dumps(card))
    entry = next(m for m in c.get("/api/v1/models").json["models"] if m["id"] == "odd")
    assert entry["status"] == "broken" and "'good_for' must be a string" in entry["reason"]


def test_narrow_methods_are_listed_after_the_general_engines(client):
    """Fixed-size and one-setting methods (NF-GAN, Yeh et al., IMT) come after every general engine, whatever their names."""
    from backend.methods import register

    @register
    class NarrowTiny(tiny_method.TinyMethod):
        id = "tiny-narrow"
        general = False

    c, folder = client
    write_checkpoint(folder, "zzz-general", [0.5, 0.5, 0.5])
    write_checkpoint(folder, "aaa-narrow", [0.5, 0.5, 0.5])
    card = json.loads((folder / "aaa-narrow.json").read_text())
    (folder / "aaa-narrow.json").write_text(json.dumps({**card, "method": "tiny-narrow"}))
    listed = c.get("/api/v1/models").json["models"]
    ids = [m["id"] for m in listed]
    assert ids[-2:] == ["zzz-general", "aaa-narrow"] and all(m["kind"] == "classical" for m in listed[:-2])
    assert {m["id"]: m["general"] for m in listed[-2:]} == {"zzz-general": True, "aaa-narrow": False}
    assert fill(c, "aaa-narrow").status_code == 200  # listed last, still served
    from backend.methods import get_method
    assert [get_method(m).general for m in ("isnet", "cisi", "nfgan", "semantic", "imt")] == [True, True, False, False, False]


def test_built_in_engines_are_served_while_a_checkpoint_loads(tmp_path, monkeypatch):
    import threading

    from backend.engines import registry as registry_module
    from backend.engines.registry import Registry

    write_checkpoint(tmp_path, "big", [0.5, 0.5, 0.5])
    release, started = threading.Event(), threading.Event()
    real = registry_module._loader("tiny")

    def slow_loader(method):
        def load(*args):
            started.set()
            release.wait(30)  # a multi-GB file on a slow disk
            return real(*args)
        return load

    monkeypatch.setattr(registry_module, "_loader", slow_loader)
    reg = Registry(tmp_path)
    loaded = []
    loader = threading.Thread(target=lambda: loaded.append(reg.get("big")))
    loader.start()
    assert started.wait(10)
    got = []
    other = threading.Thread(target=lambda: got.append(reg.get("auto")))
    other.start()
    other.join(5)
    served_meanwhile = bool(got)
    release.set()
    loader.join(30)
    other.join(30)
    assert served_meanwhile, "the default engine waited for another checkpoint's load"
    assert loaded and loaded[0].id == "big" and reg.get("big") is loaded[0]  # loaded once, then cached
