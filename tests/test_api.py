"""The HTTP API against a real server process on a loopback port."""
from __future__ import annotations

import base64
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
from conftest import decode, photo_like, png, png_header_only, rect_mask, start_server, stop_server
from PIL import Image

from backend.api.openapi import DOCUMENT
from backend.app import create_app
from backend.service import ServerConfig


def test_health_reports_versions_and_device(server):
    r = requests.get(server.url + "/api/v1/health", timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok" and body["api_version"] == 1
    assert body["device"]["type"] == "cpu"
    assert body["torch"].startswith("2.")
    assert isinstance(body["loaded_models"], list)


def test_models_lists_default_and_size_rules(server):
    body = requests.get(server.url + "/api/v1/models", timeout=10).json()
    ids = [m["id"] for m in body["models"]]
    assert body["default"] in ids and "diffusion" in ids
    for m in body["models"]:
        assert {"id", "method", "kind", "status", "description", "size"} <= set(m)
        if m["kind"] == "classical":
            assert m["status"] == "ready"
            assert {"multiple", "minimum", "native"} <= set(m["size"])


def test_openapi_matches_real_routes(server):
    served = requests.get(server.url + "/api/v1/openapi.json", timeout=10).json()
    assert served["paths"].keys() == DOCUMENT["paths"].keys()
    app = create_app(ServerConfig(models_dir=None))
    routes = {}
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/"):
            path = rule.rule.replace("<job_id>", "{job_id}")
            routes.setdefault(path, set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    documented = {path: set(ops) for path, ops in served["paths"].items()}
    assert routes == documented


@pytest.mark.parametrize("output", ["layer", "image"])
def test_pixels_outside_mask_never_change(server, output):
    img = photo_like(200, 300, seed=1)
    mask = rect_mask(200, 300, (40, 50, 60, 40), (200, 120, 50, 50))
    r = server.post_fill(img, mask, output=output, seed=3)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "image/png"
    out = decode(r.content)
    outside = mask == 0
    if output == "image":
        assert out.shape == img.shape
        assert np.array_equal(out[outside], img[outside])
        assert not np.array_equal(out[~outside], img[~outside])
    else:
        assert out.shape == (200, 300, 4)
        assert (out[outside][:, 3] == 0).all()
        assert (out[~outside][:, 3] == 255).all()
    assert r.headers["X-Model"] == requests.get(server.url + "/api/v1/models", timeout=10).json()["default"]
    assert r.headers["X-Seed"] == "3"
    x, y, w, h = map(int, r.headers["X-Region"].split(","))
    assert (x, y, x + w, y + h) == (40, 50, 250, 170)
    assert float(r.headers["X-Elapsed-Ms"]) >= float(r.headers["X-Engine-Ms"]) > 0


def test_fill_continues_the_surroundings(server):
    img = photo_like(128, 128, seed=2)
    mask = rect_mask(128, 128, (50, 50, 20, 20))
    out = decode(server.post_fill(img, mask, output="image", model="diffusion").content)
    hole = mask > 0
    err = np.abs(out[hole].astype(int) - img[hole].astype(int)).mean()
    assert err < 20, f"fill is far from the smooth surroundings: mean error {err:.1f}/255"


def test_soft_mask_gives_soft_alpha(server):
    img = photo_like(64, 64)
    mask = np.zeros((64, 64), np.uint8)
    mask[20:40, 20:40] = 128
    out = decode(server.post_fill(img, mask, output="layer").content)
    assert set(np.unique(out[20:40, 20:40, 3])) == {128}
    composite = decode(server.post_fill(img, mask, output="image").content)
    assert np.array_equal(composite[mask == 0], img[mask == 0])


def test_grow_and_feather_widen_the_changed_area(server):
    img = photo_like(96, 96)
    mask = rect_mask(96, 96, (40, 40, 10, 10))
    plain = decode(server.post_fill(img, mask, output="layer").content)[:, :, 3]
    grown = decode(server.post_fill(img, mask, output="layer", grow=4, feather=4).content)[:, :, 3]
    assert (plain > 0).sum() == 100
    assert (grown > 0).sum() > (plain > 0).sum() + 4 * 4 * 10
    assert (grown[mask > 0] == 255).all()  # the selection itself stays fully filled
    soft = grown[(grown > 0) & (grown < 255)]
    assert soft.size > 0, "feather produced no soft edge"


def test_sixteen_bit_rgba_round_trip(server):
    img = photo_like(80, 90, dtype=np.uint16)
    alpha = np.full((80, 90, 1), 40000, np.uint16)
    rgba = np.concatenate([img, alpha], axis=2)
    mask = rect_mask(80, 90, (30, 20, 20, 30))
    out = decode(server.post_fill(rgba, mask, output="image").content)
    assert out.dtype == np.uint16 and out.shape == (80, 90, 4)
    assert np.array_equal(out[mask == 0], rgba[mask == 0])
    assert (out[mask > 0][:, 3] == 65535).all()


def test_json_body_and_json_answer(server):
    img = photo_like(64, 64)
    mask = rect_mask(64, 64, (10, 10, 8, 8))
    body = {"image": "data:image/png;base64," + base64.b64encode(png(img)).decode(),
            "mask": base64.b64encode(png(mask)).decode(), "output": "image", "seed": 7, "model": "diffusion",
            "options": {"sweeps": 3}}
    r = requests.post(server.url + "/api/v1/inpaint", json=body, headers={"Accept": "application/json"}, timeout=60)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["seed"] == 7 and data["region"] == [10, 10, 8, 8]
    out = decode(base64.b64decode(data["image"]))
    assert np.array_equal(out[mask == 0], img[mask == 0])


@pytest.mark.parametrize("case, status, code", [
    ("size_mismatch", 400, "size_mismatch"),
    ("corrupt_png", 400, "bad_image"),
    ("not_an_image", 400, "bad_image"),
    ("empty_mask", 422, "empty_mask"),
    ("full_mask", 422, "full_mask"),
    ("huge_image", 413, "image_too_large"),
    ("unknown_model", 404, "unknown_model"),
    ("bad_grow", 400, "bad_field"),
    ("bad_output", 400, "bad_field"),
    ("bad_option", 400, "bad_field"),
    ("unknown_field", 400, "bad_field"),
    ("missing_mask", 400, "missing_field"),
    ("empty_image", 400, "bad_image"),
    ("cmyk_image", 400, "unsupported_colour"),
    ("lab_tiff_image", 400, "unsupported_colour"),
])
def test_bad_input_gets_clear_4xx_and_server_survives(server, case, status, code):
    img, mask = photo_like(64, 64), rect_mask(64, 64, (10, 10, 10, 10))
    fields = {}
    if case == "size_mismatch":
        mask = rect_mask(64, 65, (10, 10, 10, 10))
    elif case == "corrupt_png":
        img = png(img)[:200]
    elif case == "empty_image":
        img = b""
    elif case == "not_an_image":
        img = b"GIF89a? no: just some text pretending to be an image"
    elif case == "empty_mask":
        mask = np.zeros((64, 64), np.uint8)
    elif case == "full_mask":
        mask = np.full((64, 64), 255, np.uint8)
    elif case == "huge_image":
        img = png_header_only(30000, 30000)
    elif case == "unknown_model":
        fields["model"] = "no-such-model"
    elif case == "bad_grow":
        fields["grow"] = "lots"
    elif case == "bad_output":
        fields["output"] = "psd"
    elif case == "bad_option":
        fields["options"] = json.dumps({"sweeps": 10_000})
    elif case == "unknown_field":
        fields["strength"] = "0.5"
    elif case in ("cmyk_image", "lab_tiff_image"):
        buf = io.BytesIO()
        Image.fromarray(img).convert("CMYK" if case == "cmyk_image" else "LAB").save(buf, "JPEG" if case == "cmyk_image" else "TIFF")
        img = buf.getvalue()
    if case == "missing_mask":
        r = requests.post(server.url + "/api/v1/inpaint", files={"image": ("i.png", png(img))}, timeout=30)
    else:
        r = server.post_fill(img, mask, **fields)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code and len(body["detail"]) > 10
    assert requests.get(server.url + "/api/v1/health", timeout=10).status_code == 200


def test_unsupported_content_type_and_unknown_route(server):
    r = requests.post(server.url + "/api/v1/inpaint", data=b"x", headers={"Content-Type": "text/plain"}, timeout=10)
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
    r = requests.get(server.url + "/api/v1/nothing-here", timeout=10)
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    r = requests.post(server.url + "/api/v1/inpaint", data="{not json", headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400


def test_eight_clients_at_once_each_get_their_own_answer(server):
    def one(i: int):
        img = photo_like(96 + 8 * i, 128, seed=i)
        mask = rect_mask(img.shape[0], 128, (10 + 5 * i, 20, 20, 20))
        r = server.post_fill(img, mask, output="image", seed=i)
        assert r.status_code == 200, r.text
        out = decode(r.content)
        return out.shape == img.shape and np.array_equal(out[mask == 0], img[mask == 0]) and r.headers["X-Seed"] == str(i)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(8)))
    assert all(results)


def _wait(server, job_id: str, states=("done", "failed", "cancelled"), timeout=60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        body = requests.get(f"{server.url}/api/v1/jobs/{job_id}", timeout=10).json()
        if body["state"] in states:
            return body
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} stuck: {body}")


def test_job_lifecycle_and_result(server):
    img, mask = photo_like(96, 96), rect_mask(96, 96, (30, 30, 20, 20))
    r = server.post_fill(img, mask, path="/api/v1/jobs", output="image")
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["state"] in ("queued", "running", "done") and r.headers["Location"].endswith(job["id"])
    assert _wait(server, job["id"])["state"] == "done"
    res = requests.get(f"{server.url}/api/v1/jobs/{job['id']}/result", timeout=10)
    assert res.status_code == 200
    assert np.array_equal(decode(res.content)[mask == 0], img[mask == 0])
    assert requests.get(f"{server.url}/api/v1/jobs/unknown", timeout=10).status_code == 404
    assert requests.delete(f"{server.url}/api/v1/jobs/unknown", timeout=10).status_code == 404


def test_prefer_respond_async_answers_202_with_the_job(server):
    img, mask = photo_like(96, 96, seed=4), rect_mask(96, 96, (30, 30, 20, 20))
    r = server.post_fill(img, mask, output="image", headers={"Prefer": "wait=5, respond-async"})
    assert r.status_code == 202, r.text
    assert r.headers["Preference-Applied"] == "respond-async"
    job = r.json()
    assert r.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert _wait(server, job["id"])["state"] == "done"
    res = requests.get(server.url + r.headers["Location"] + "/result", timeout=10)
    assert res.status_code == 200 and np.array_equal(decode(res.content)[mask == 0], img[mask == 0])
    assert server.post_fill(img, mask, headers={"Prefer": "return=minimal"}).status_code == 200


def test_every_request_is_one_log_line(server):
    img, mask = photo_like(30, 40), rect_mask(30, 40, (5, 5, 10, 10))
    marker = f"/api/v1/jobs/log-{time.time_ns()}"
    assert server.post_fill(img, mask, model="diffusion").status_code == 200
    assert requests.get(server.url + marker, timeout=10).status_code == 404
    lines = server.log.read_text().splitlines()
    fill = [line for line in lines if line.startswith("POST /api/v1/inpaint 200 model=diffusion image=40x30 ")]
    assert fill and fill[-1].endswith(" ms")
    assert any(line.startswith(f"GET {marker} 404 model=- image=- ") for line in lines), lines[-5:]


def test_job_cancel(server):
    # A slow job keeps the worker busy, so the jobs behind it are still queued when cancelled.
    big = photo_like(1500, 1500)
    big_mask = rect_mask(1500, 1500, (100, 100, 1200, 1200))
    slow = server.post_fill(big, big_mask, path="/api/v1/jobs", model="diffusion", options=json.dumps({"sweeps": 100})).json()
    queued = [server.post_fill(photo_like(64, 64), rect_mask(64, 64, (5, 5, 5, 5)), path="/api/v1/jobs").json()
              for _ in range(2)]
    r = requests.delete(f"{server.url}/api/v1/jobs/{queued[0]['id']}", timeout=10)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    res = requests.get(f"{server.url}/api/v1/jobs/{queued[0]['id']}/result", timeout=10)
    assert res.status_code == 409 and res.json()["error"] == "cancelled"
    requests.delete(f"{server.url}/api/v1/jobs/{slow['id']}", timeout=10)
    assert _wait(server, slow["id"])["state"] in ("cancelled", "done")
    assert _wait(server, queued[1]["id"])["state"] == "done"  # the queue moves on


def test_broken_checkpoints_are_listed_not_fatal(server):
    (server.models_dir / "garbage.json").write_text("{not json")
    (server.models_dir / "nomethod.json").write_text(json.dumps({"config": {}}))
    (server.models_dir / "future.json").write_text(json.dumps({"method": "warp-drive"}))
    (server.models_dir / "future.safetensors").write_bytes(b"\0" * 16)
    try:
        models = {m["id"]: m for m in requests.get(server.url + "/api/v1/models", timeout=10).json()["models"]}
        for name in ("garbage", "nomethod", "future"):
            assert models[name]["status"] == "broken" and models[name]["reason"], models[name]
        assert "warp-drive" in models["future"]["reason"]
        r = server.post_fill(photo_like(32, 32), rect_mask(32, 32, (4, 4, 4, 4)), model="future")
        assert r.status_code == 409 and r.json()["error"] == "model_not_ready"
    finally:
        for p in server.models_dir.iterdir():
            p.unlink()


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    s = start_server(tmp_path_factory.mktemp("strict"), "--token", "secret-token", "--max-upload-mb", "1",
                     "--max-pixels", "100000")
    yield s
    stop_server(s)


def test_token_is_required_when_set(strict_server):
    r = requests.get(strict_server.url + "/api/v1/health", timeout=10)
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    r = requests.get(strict_server.url + "/api/v1/health", headers={"Authorization": "Bearer wrong"}, timeout=10)
    assert r.status_code == 401
    r = requests.get(strict_server.url + "/api/v1/health", headers={"Authorization": "Bearer secret-token"}, timeout=10)
    assert r.status_code == 200


def test_limits_on_upload_and_pixels(strict_server):
    auth = {"Authorization": "Bearer secret-token"}
    noise = (np.random.default_rng(0).random((700, 700, 3)) * 255).astype(np.uint8)  # ~1.4 MB as PNG
    r = strict_server.post_fill(noise, rect_mask(700, 700, (1, 1, 5, 5)), headers=auth)
    assert r.status_code == 413 and r.json()["error"] == "upload_too_large"
    r = strict_server.post_fill(photo_like(400, 400), rect_mask(400, 400, (1, 1, 5, 5)), headers=auth)
    assert r.status_code == 413 and r.json()["error"] == "image_too_large"
    assert requests.get(strict_server.url + "/api/v1/health", headers=auth, timeout=10).status_code == 200


def test_refuses_public_bind_without_token(tmp_path):
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-m", "backend.cli", "serve", "--host", "0.0.0.0", "--models-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "--token" in proc.stderr


def test_huge_photo_with_three_separate_selections(server):
    rng = np.random.default_rng(0)
    img = np.empty((4000, 6000, 3), np.uint8)
    img[:] = (70, 120, 50)
    img[::5] = (60, 110, 45)
    img[:, ::9] = (85, 135, 60)
    img[:50, :50] = rng.integers(0, 255, (50, 50, 3))
    mask = rect_mask(4000, 6000, (200, 300, 400, 300), (3000, 1800, 300, 500), (5500, 3600, 400, 300))
    r = server.post_fill(img, mask, output="image", timeout=300)
    assert r.status_code == 200, r.text
    out = decode(r.content)
    assert np.array_equal(out[mask == 0], img[mask == 0])
    for x, y, w, h in ((200, 300, 400, 300), (3000, 1800, 300, 500), (5500, 3600, 400, 300)):
        region = out[y:y + h, x:x + w].astype(int)
        assert np.abs(region - img[y:y + h, x:x + w]).mean() < 25  # continues the grass-like pattern, no black hole


def _fill_json(**fields) -> dict:
    return {"image": base64.b64encode(png(photo_like(32, 32))).decode(),
            "mask": base64.b64encode(png(rect_mask(32, 32, (8, 8, 8, 8)))).decode(), "model": "diffusion", **fields}


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("case", ["body", "options_in_json", "options_in_form", "options_past_the_limit_only"])
def test_deeply_nested_json_is_a_400(server, case):
    if case == "body":
        r = requests.post(server.url + "/api/v1/inpaint", data=DEEP, headers={"Content-Type": "application/json"}, timeout=30)
    elif case == "options_in_json":
        body = json.dumps(_fill_json(options=None)).replace('"options": null', '"options": ' + DEEP)
        r = requests.post(server.url + "/api/v1/jobs", data=body, headers={"Content-Type": "application/json"}, timeout=30)
    elif case == "options_in_form":
        r = server.post_fill(photo_like(32, 32), rect_mask(32, 32, (8, 8, 8, 8)), path="/api/v1/jobs", options=DEEP)
    else:  # the parser copes with 500 levels; what walks the value after it need not
        r = server.post_fill(photo_like(32, 32), rect_mask(32, 32, (8, 8, 8, 8)), options='{"sweeps": ' + "[" * 500 + "]" * 500 + "}")
    assert r.status_code == 400, r.text
    assert "nested deeper" in r.json()["detail"]


def test_multipart_part_without_a_name_is_a_400(server):
    boundary = "b0undary"
    parts = [(b'name="image"; filename="i.png"', png(photo_like(32, 32))),
             (b'name="mask"; filename="m.png"', png(rect_mask(32, 32, (8, 8, 8, 8)))), (b"", b"hello")]
    body = b"".join(b"--" + boundary.encode() + b"\r\nContent-Disposition: form-data; " + head + b"\r\n\r\n" + data + b"\r\n"
                    for head, data in parts) + b"--" + boundary.encode() + b"--\r\n"
    r = requests.post(server.url + "/api/v1/inpaint", data=body, timeout=30,
                      headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 400 and r.json()["error"] == "bad_request" and "no name" in r.json()["detail"]


@pytest.mark.parametrize("numeral", ["1_000", "\u0661", "\u0663\u0662", " 5", "5 ", "0x10", "1e1", "", "++1"])
def test_odd_numerals_are_refused_for_integers(server, numeral):
    img, mask = photo_like(32, 32), rect_mask(32, 32, (8, 8, 8, 8))
    if numeral:  # an empty field means "the default"
        r = server.post_fill(img, mask, model="diffusion", grow=numeral)
        assert r.status_code == 400 and "'grow' must be an integer" in r.json()["detail"], r.text
    r = server.post_fill(img, mask, model="diffusion", options=json.dumps({"sweeps": numeral}))
    assert r.status_code == 400 and "option 'sweeps' must be int" in r.json()["detail"], r.text
    r = server.post_fill(img, mask, model="diffusion", grow="-2", seed="+7", options=json.dumps({"sweeps": "3"}))
    assert r.status_code == 200 and r.headers["X-Seed"] == "7"  # plain numerals still are numbers


@pytest.mark.parametrize("model", [0, False, [], {}, 5, ["diffusion"]])
def test_model_id_must_be_a_string(server, model):
    r = requests.post(server.url + "/api/v1/inpaint", json=_fill_json(model=model), timeout=30)
    assert r.status_code == 400 and "'model' must be a string" in r.json()["detail"], r.text


def test_job_options_are_checked_at_submit(server):
    img, mask = photo_like(32, 32), rect_mask(32, 32, (8, 8, 8, 8))
    r = server.post_fill(img, mask, path="/api/v1/jobs", model="patchmatch", options=json.dumps({"patch_size": 8}))
    assert r.status_code == 400 and "must be odd" in r.json()["detail"], r.text
    listed = next(m for m in requests.get(server.url + "/api/v1/models", timeout=10).json()["models"] if m["id"] == "patchmatch")
    assert listed["params"]["patch_size"]["odd"] is True


def test_too_many_form_parts_cite_the_part_limit(server):
    files = {"image": ("i.png", png(photo_like(32, 32))), "mask": ("m.png", png(rect_mask(32, 32, (8, 8, 8, 8))))}
    r = requests.post(server.url + "/api/v1/inpaint", files=files, data=[(f"f{i}", "x") for i in range(1500)], timeout=30)
    assert r.status_code == 413, r.text
    assert "1000 parts" in r.json()["detail"] and "MiB" not in r.json()["detail"]


def _raw(server, request: bytes) -> tuple[str, dict, bytes]:
    import socket

    host, port = server.url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    return status, {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}, body


@pytest.mark.parametrize("header, status, code", [
    (b"Content-Length: abc", "400", "bad_request"),
    (b"Content-Length: 1000000000000", "413", "upload_too_large"),  # past waitress' own body limit, refused unread
    (b"Transfer-Encoding: gzip", "501", "http_error"),
], ids=["bad_length", "huge_length", "unknown_encoding"])
def test_waitress_refusals_are_json(server, header, status, code):
    line, headers, body = _raw(server, b"POST /api/v1/inpaint HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\n\r\n")
    assert line.split()[1] == status, line
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == code and json.loads(body)["detail"]


def test_exif_orientation_is_applied_to_image_and_mask(server):
    stored = photo_like(30, 40)  # the camera's pixels, shown turned a quarter clockwise (orientation 6)
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    Image.fromarray(stored).save(buf, "JPEG", quality=100, subsampling=0, exif=exif.tobytes())
    displayed = np.rot90(stored, -1)
    mask = rect_mask(40, 30, (5, 25, 10, 8))  # drawn on the photo as a viewer shows it: 30 wide, 40 tall
    r = server.post_fill(buf.getvalue(), mask, output="image", model="diffusion")
    assert r.status_code == 200, r.text
    out = decode(r.content)
    assert out.shape == (40, 30, 3) and r.headers["X-Region"] == "5,25,10,8"
    assert np.abs(out[mask == 0].astype(int) - displayed[mask == 0]).mean() < 3


def _post(server, files: dict, **fields):
    return requests.post(server.url + "/api/v1/inpaint", files={k: (f"{k}.png", png(v)) for k, v in files.items()},
                         data={k: str(v) for k, v in fields.items()}, timeout=120)


def _red_above_and_below(size=72):
    """Red noise everywhere but grey noise in the hole's rows: a fill copies red unless it samples the sides only."""
    rng = np.random.default_rng(0)
    img = (rng.random((size, size, 3)) * 60 + 100).astype(np.uint8)
    red = np.ones((size, size), bool)
    y0, y1, x0, x1 = size // 3, size * 2 // 3, size // 3, size * 2 // 3
    red[y0:y1] = False
    img[red] = np.stack([200 + rng.random(red.sum()) * 40, 20 + rng.random(red.sum()) * 30,
                         20 + rng.random(red.sum()) * 30], 1).astype(np.uint8)
    mask = rect_mask(size, size, (x0, y0, x1 - x0, y1 - y0))
    return img, mask


def _reds(out: np.ndarray, mask: np.ndarray) -> int:
    px = out[mask > 0].astype(int)
    return int(((px[:, 0] > 170) & (px[:, 1] < 80)).sum())


def test_sampling_area_keeps_red_outside_it_out_of_the_fill(server):
    img, mask = _red_above_and_below()
    fill = lambda **f: decode(_post(server, {"image": img, "mask": mask}, output="image", seed=1, **f).content)  # noqa: E731
    assert _reds(fill(), mask) > 20  # without a sampling area red is copied in
    assert _reds(fill(source_preset="sides", source_width=24), mask) == 0
    assert _reds(fill(source_preset="above_below", source_width=24), mask) > _reds(fill(), mask)
    painted = np.zeros(mask.shape, np.uint8)
    painted[24:48] = 255  # the grey rows: the same as "sides" here, painted
    r = _post(server, {"image": img, "mask": mask, "source": painted}, output="image", seed=1)
    assert _reds(decode(r.content), mask) == 0


def test_sampling_area_errors(server):
    img, mask = photo_like(64, 64), rect_mask(64, 64, (20, 20, 20, 20))
    r = _post(server, {"image": img, "mask": mask, "source": np.zeros((64, 64), np.uint8)})
    assert r.status_code == 422 and r.json()["error"] == "source_too_small", r.text
    r = _post(server, {"image": img, "mask": mask, "source": np.full((64, 63), 255, np.uint8)})
    assert r.status_code == 400 and r.json()["error"] == "size_mismatch" and "source is 63x64" in r.json()["detail"]
    for field, value in (("source_preset", "left"), ("source_width", 0)):
        r = _post(server, {"image": img, "mask": mask}, **{field: value})
        assert r.status_code == 400 and field in r.json()["detail"], r.text
    r = _post(server, {"image": img, "mask": mask}, model="diffusion", source_preset="around", source_width=1)
    assert r.status_code == 200  # engines that do not copy patches ignore it


def test_fill_transparent_fills_a_frame_and_needs_no_mask(server):
    img = np.zeros((40, 48, 4), np.uint8)
    img[5:-5, 5:-5, :3] = photo_like(30, 38, seed=3)
    img[5:-5, 5:-5, 3] = 255
    r = _post(server, {"image": img}, fill_transparent=1, output="image", seed=1)
    assert r.status_code == 200, r.text
    out = decode(r.content)
    assert (out[:, :, 3] == 255).all() and np.array_equal(out[5:-5, 5:-5], img[5:-5, 5:-5])
    r = _post(server, {"image": img[:, :, :3]}, fill_transparent=1)
    assert r.status_code == 422 and r.json()["error"] == "no_transparent"
    r = _post(server, {"image": img})
    assert r.status_code == 400 and r.json()["error"] == "missing_field" and "fill_transparent" in r.json()["detail"]
    r = _post(server, {"image": img, "mask": rect_mask(40, 48, (10, 10, 5, 5))}, fill_transparent="maybe")
    assert r.status_code == 400 and r.json()["error"] == "bad_field"
