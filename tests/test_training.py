"""The shared trainer: exact resume after a kill, atomic checkpoints, and serving what it wrote."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
import torch
from conftest import ROOT, decode, free_port, photo_like, png, rect_mask
from safetensors.torch import load_file

import tiny_method  # noqa: F401 - registers the 'tiny' method
from backend.cli import main
from backend.training import checkpoint

RUN = [sys.executable, "tests/tiny_cli.py"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(6):
        (folder / ("sub" if i % 2 else ".")).mkdir(exist_ok=True)
        cv2.imwrite(str(folder / ("sub" if i % 2 else ".") / f"p{i}.jpg"), photo_like(120 + 10 * i, 160, seed=i))
    (folder / "notes.txt").write_text("not a photo")
    return folder


def train_cmd(photos: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--method", "tiny", "--data", str(photos), "--out", str(out), "--device", "cpu", *extra]


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    folder = out.with_name(out.name + ".train")
    pointer = json.loads((folder / "latest.json").read_text())
    return load_file(str(folder / f"{pointer['stem']}.safetensors"))


def test_killed_run_resumes_to_the_same_weights(photos, tmp_path):
    steps = ["--steps", "60", "--set", "save_every=10", "--set", "val_every=30"]
    whole = tmp_path / "whole"
    assert subprocess.run(RUN + train_cmd(photos, whole, *steps), cwd=ROOT, capture_output=True).returncode == 0

    broken = tmp_path / "broken"
    proc = subprocess.Popen(RUN + train_cmd(photos, broken, *steps), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = tmp_path / "broken.train" / "latest.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (latest.exists() and json.loads(latest.read_text())["step"] >= 20):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = json.loads(latest.read_text())["step"]
    assert killed_at < 60

    resumed = subprocess.run(RUN + train_cmd(photos, broken, "--resume"), cwd=ROOT, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    a, b = final_weights(whole), final_weights(broken)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resuming from step {killed_at}"
    meta = json.loads((tmp_path / "broken.json").read_text())
    assert meta["step"] == 60 and meta["method"] == "tiny" and meta["versions"]["torch"] == torch.__version__
    assert meta["training"]["data"]["train_photos"] + meta["training"]["data"]["val_photos"] == 6
    assert set(meta["metrics"]) == {"psnr", "ssim", "l1", "psnr_image", "ssim_image"}
    assert (tmp_path / "broken.train" / "curves.png").stat().st_size > 1000
    assert list((tmp_path / "broken.train" / "samples").glob("*.png"))


def test_terminated_run_saves_where_it_stopped(photos, tmp_path):
    out = tmp_path / "term"
    steps = ["--steps", "100000", "--set", "save_every=100000", "--set", "val_every=100000", "--set", "workers=1"]
    proc = subprocess.Popen(RUN + train_cmd(photos, out, *steps), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    seen = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stdout.read(1), b"")), daemon=True)
    reader.start()
    deadline = time.time() + 120
    while time.time() < deadline and b"5/100000" not in b"".join(seen):  # the bar shows steps done
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)  # as job schedulers do: the data worker gets it too
    proc.wait(timeout=60)
    reader.join(timeout=10)
    text = b"".join(seen).decode(errors="replace")
    assert "interrupted: saving step" in text, text[-2000:]
    assert proc.returncode == 130 and "Traceback" not in text, text[-2000:]
    assert "resume with: inpaint-backend train --method tiny" in text and text.rstrip().endswith("--resume")
    step = json.loads((tmp_path / "term.train" / "latest.json").read_text())["step"]
    assert 5 <= step < 100000 and (tmp_path / "term.json").exists()


def test_refuses_to_overwrite_a_run_and_to_resume_nothing(photos, tmp_path, capsys):
    out = tmp_path / "m"
    assert main(train_cmd(photos, out, "--resume")) == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert main(train_cmd(photos, out, "--steps", "2")) == 0
    assert main(train_cmd(photos, out, "--steps", "2")) == 2
    assert "--resume" in capsys.readouterr().err


def test_unknown_method_is_a_clear_error(photos, tmp_path, capsys):
    assert main(["train", "--method", "nope", "--data", str(photos), "--out", str(tmp_path / "x")]) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err


def test_interrupted_write_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    stem = tmp_path / "model"
    checkpoint.export(stem, {"generator.w": torch.ones(3)}, {"method": "tiny", "step": 1})

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        checkpoint.export(stem, {"generator.w": torch.zeros(3)}, {"method": "tiny", "step": 2})
    monkeypatch.undo()
    assert torch.equal(load_file(str(tmp_path / "model.safetensors"))["generator.w"], torch.ones(3))
    assert json.loads((tmp_path / "model.json").read_text())["step"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left behind


def test_running_backend_serves_a_new_checkpoint(photos, tmp_path):
    from waitress.server import create_server

    from backend.app import create_app
    from backend.service import ServerConfig

    models = tmp_path / "models"
    models.mkdir()
    server = create_server(create_app(ServerConfig(models_dir=models, device="cpu")), host="127.0.0.1", port=free_port())
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}"
    try:
        before = [m["id"] for m in requests.get(url + "/api/v1/models", timeout=10).json()["models"]]
        assert "mine" not in before
        assert main(train_cmd(photos, models / "mine", "--steps", "10")) == 0
        entry = next(m for m in requests.get(url + "/api/v1/models", timeout=10).json()["models"] if m["id"] == "mine")
        assert entry["status"] == "ready" and entry["method"] == "tiny" and entry["kind"] == "learned"
        assert entry["metrics"]["psnr"] > 0 and entry["training"]["steps"] == 10
        assert entry["size"]["native"] == 32 and entry["size"]["multiple"] == 8
        img, mask = photo_like(50, 70), rect_mask(50, 70, (20, 10, 15, 21))
        r = requests.post(url + "/api/v1/inpaint", files={"image": png(img), "mask": png(mask)},
                          data={"model": "mine", "output": "image"}, timeout=60)
        assert r.status_code == 200, r.text
        assert r.headers["X-Model"] == "mine"
        out = decode(r.content)
        assert np.array_equal(out[mask == 0], img[mask == 0]) and not np.array_equal(out[mask > 0], img[mask > 0])
    finally:
        server.close()


def test_torchrun_two_processes_train_one_checkpoint(photos, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "tests/tiny_cli.py",
           *train_cmd(photos, out, "--steps", "4", "--set", "val_every=4")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("done: step 4") == 2  # both ranks finish ...
    assert proc.stdout.count("val psnr ") == 1  # ... but only rank 0 validates
    meta = json.loads((tmp_path / "ddp.json").read_text())
    assert meta["step"] == 4 and set(meta["metrics"]) == {"psnr", "ssim", "l1", "psnr_image", "ssim_image"}


def test_prepared_photo_set_keeps_test_photos_out(tmp_path):
    root = tmp_path / "set"
    for split, n in (("train", 3), ("val", 2), ("test", 2)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / split / f"{split}{i}.jpg"), photo_like(80, 80, seed=i))
    assert main(train_cmd(root, tmp_path / "m", "--steps", "2")) == 0
    data = json.loads((tmp_path / "m.json").read_text())["training"]["data"]
    assert data["train_photos"] == 3 and data["val_photos"] == 2
    assert all(f.startswith("val") for f in data["val_files"])


class _Exploit:
    """Unpickling this would create a file: proof that a loader executed code from a checkpoint."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_resume_never_unpickles_code(photos, tmp_path):
    out = tmp_path / "m"
    assert main(train_cmd(photos, out, "--steps", "2")) == 0
    folder = tmp_path / "m.train"
    stem = json.loads((folder / "latest.json").read_text())["stem"]
    marker = tmp_path / "pwned"
    torch.save({"evil": _Exploit(str(marker))}, folder / f"{stem}.state.pt")
    with pytest.raises(Exception, match="(?i)weights_only|unpickl"):
        main(train_cmd(photos, out, "--resume", "--steps", "4"))
    assert not marker.exists()


def test_scene_crops_and_rotations(tmp_path):
    from backend.training.data import MaskSpec, TrainingPhotos

    ramp = np.zeros((200, 300, 3), np.uint8)
    ramp[:, :, 2] = np.linspace(0, 255, 300)[None, :]  # red (BGR on disk) rises left to right
    cv2.imwrite(str(tmp_path / "ramp.png"), ramp)
    masks = MaskSpec({"centre": 1.0}, (1 / 9, 1 / 9))
    details = TrainingPhotos([tmp_path / "ramp.png"], 24, masks, seed=0)
    scenes = TrainingPhotos([tmp_path / "ramp.png"], 24, masks, seed=0, crop_fraction=(1.0, 1.0))
    turned = TrainingPhotos([tmp_path / "ramp.png"], 24, masks, seed=0, crop_fraction=(1.0, 1.0), rotate=45)
    assert torch.equal(scenes[3][0], scenes[3][0]) and scenes[3][0].shape == (3, 24, 24)
    assert int(scenes[3][1].sum()) == 64  # the paper's 8x8 centre hole
    span = lambda t: float(t[0].max() - t[0].min())  # noqa: E731 - red range across the crop
    # A crop of the whole shorter side spans 200 of 300 px of the ramp; the default crops are 24-96 px.
    assert all(span(scenes[k][0]) > 0.55 for k in range(5)) and all(span(details[k][0]) < 0.4 for k in range(5))
    # Unturned, red is constant down each column; turned crops vary down the columns.
    down = lambda t: float(t[0].std(dim=0).mean())  # noqa: E731
    assert max(down(scenes[k][0]) for k in range(5)) < 1e-3 and max(down(turned[k][0]) for k in range(5)) > 0.02


def test_resume_takes_changed_settings_from_then_on(photos, tmp_path):
    out = tmp_path / "m"
    assert main(train_cmd(photos, out, "--steps", "2", "--set", "val_every=100")) == 0
    assert main(train_cmd(photos, out, "--resume", "--steps", "4", "--set", "val_every=3")) == 0
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["config"]["steps"] == 4 and meta["config"]["val_every"] == 3
    assert "size" in meta["config"]  # the rest comes from the resumed run


def test_ema_resumes_exactly_and_is_what_the_export_serves(photos, tmp_path):
    steps = ["--set", "ema=0.9", "--set", "save_every=2", "--set", "val_every=100"]
    assert main(train_cmd(photos, tmp_path / "whole", "--steps", "4", *steps)) == 0
    assert main(train_cmd(photos, tmp_path / "split", "--steps", "2", *steps)) == 0
    assert main(train_cmd(photos, tmp_path / "split", "--steps", "4", "--resume")) == 0
    a, b = final_weights(tmp_path / "whole"), final_weights(tmp_path / "split")
    assert a.keys() == b.keys() and any(k.startswith("ema.generator.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    exported = load_file(str(tmp_path / "split.safetensors"))
    assert all(torch.equal(v, b[f"ema.{k}"]) for k, v in exported.items())
    assert any(not torch.equal(v, b[k]) for k, v in exported.items())  # the shadow, not the trained weights


def test_ema_of_a_batchnorm_network_warns():
    from backend.training.trainer import EMA
    with pytest.warns(UserWarning, match="BatchNorm"):
        EMA({"generator": torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))}, ("generator",), 0.99)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        EMA({"generator": torch.nn.Conv2d(3, 4, 3)}, ("generator",), 0.99)


def test_ema_forgets_the_random_start_within_a_few_dozen_steps():
    from backend.training.trainer import EMA
    net = torch.nn.Linear(4, 4)
    with torch.no_grad():
        net.weight.zero_()
    ema = EMA({"generator": net}, ("generator",), 0.99)
    with torch.no_grad():
        net.weight.fill_(1.0)  # trained weights, far from the start
    for step in range(50):
        ema.update({"generator": net}, step)
    assert float(ema.shadows["generator"].weight.min()) > 0.8  # a fixed 0.99 would still be at 0.4
    for step in range(50, 5000):  # later on the decay is the one set
        ema.update({"generator": net}, step)
    with torch.no_grad():
        net.weight.fill_(2.0)
    ema.update({"generator": net}, 5000)
    assert float(ema.shadows["generator"].weight.mean()) == pytest.approx(1.01, abs=1e-5)


def test_ema_loads_the_older_single_generator_shadow_and_starts_missing_ones_from_the_weights():
    from backend.training.trainer import EMA

    nets = {"generator": torch.nn.Linear(2, 2), "other": torch.nn.Linear(2, 2)}
    ema = EMA(nets, ("generator", "other"), 0.9)
    older = {f"ema.{k}": torch.full_like(v, 7.0) for k, v in nets["generator"].state_dict().items()}
    ema.load(older)
    assert all((v == 7).all() for v in ema.shadows["generator"].state_dict().values())
    assert torch.equal(ema.shadows["other"].weight, nets["other"].weight)
    ema.load(ema.tensors())  # and its own format round-trips
    assert all((v == 7).all() for v in ema.shadows["generator"].state_dict().values())


def test_wallpapers_named_by_their_size_keep_one_photo_each():
    # KDE wallpapers are all <Name>/contents/images/1920x1080.jpg: named by file, 9 of 11 overwrote each other.
    from backend.training.photos import WALLPAPERS, photo_name

    paths = [Path(WALLPAPERS, n, "contents/images/1920x1080.jpg") for n in ("Kite", "Path", "Grey")]
    assert [photo_name(p) for p in paths] == ["Kite", "Path", "Grey"]
    assert photo_name(Path("/usr/share/backgrounds/mate/nature/Aqua.jpg")) == "Aqua"


def test_train_help_names_the_methods_by_the_ids_it_takes(capsys):
    from backend.methods import BUILTIN

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(m in text for m in BUILTIN) and "cisinet" not in text


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="not a git checkout")
def test_training_state_and_user_checkpoints_stay_out_of_git_and_shipped_ones_in():
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    assert ignored("models/my-landscapes.train/step-00001000.safetensors") and ignored("models/my-landscapes.safetensors")
    assert not ignored("models/isnet-open.safetensors") and not ignored("models/cisi-open.json")
    assert not ignored("models/README.md")


def test_a_users_mistake_is_one_line_and_exit_code_2(photos, tmp_path, capsys):
    cases = [(train_cmd(tmp_path / "no-such-folder", tmp_path / "a"), "no such folder"),
             (train_cmd(photos, tmp_path / "b", "--recipe", "nope"), "no recipe 'nope'"),
             (["train", "--method", "isnet", "--data", str(photos), "--out", str(tmp_path / "c"), "--device", "cpu",
               "--set", f"features_path={tmp_path / 'none.pth'}", "--steps", "1"], "VGG19 ImageNet weights not found")]
    for argv, said in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert said in err and err.startswith("error: ") and len(err.splitlines()) == 1, err  # before any progress bar
    with pytest.raises(ValueError, match="no recipe"):
        main(train_cmd(photos, tmp_path / "d", "--recipe", "nope", "--debug"))


def exported(stem: Path) -> dict[str, torch.Tensor]:
    return load_file(str(stem.with_name(stem.name + ".safetensors")))


def test_init_from_warm_starts_a_new_run_from_a_served_checkpoint(photos, tmp_path):
    """A run whose state is gone (another machine) starts again from the shipped weights and their config."""
    first = tmp_path / "first"
    assert main(train_cmd(photos, first, "--steps", "20", "--set", "width=8", "--half")) == 0
    shutil.rmtree(tmp_path / "first.train")
    # A warm-up this long keeps the one step's learning rate at ~1e-9: the weights are the checkpoint's.
    again = tmp_path / "again"
    assert main(train_cmd(photos, again, "--init-from", str(first) + ".safetensors", "--steps", "1",
                          "--set", "warmup=1000000")) == 0
    a, b = exported(first), exported(again)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(b[k].float(), a[k].float(), atol=1e-4, rtol=0)
    fresh = tmp_path / "fresh"
    assert main(train_cmd(photos, fresh, "--steps", "1", "--set", "width=8")) == 0
    assert any((exported(fresh)[k] - a[k].float()).abs().max() > 1e-2 for k in a), "the warm start was not needed"
    card = json.loads((tmp_path / "again.json").read_text())
    assert card["config"]["width"] == 8  # the checkpoint's architecture, not the recipe's 16
    assert card["config"]["init_from"]["step"] == 20 and card["config"]["init_from"]["file"].endswith("first.safetensors")


def test_init_from_refuses_what_cannot_warm_start(photos, tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    assert main(train_cmd(photos, ckpt, "--steps", "2")) == 0
    cases = {
        "no such checkpoint": train_cmd(photos, tmp_path / "a", "--init-from", str(tmp_path / "nope.safetensors")),
        "does not fit": train_cmd(photos, tmp_path / "b", "--init-from", str(ckpt), "--set", "width=4"),
        "pass one": train_cmd(photos, ckpt, "--init-from", str(ckpt), "--resume"),
    }
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 64)
    cases["unreadable"] = train_cmd(photos, tmp_path / "c", "--init-from", str(tmp_path / "broken.safetensors"))
    card = json.loads((tmp_path / "ckpt.json").read_text())
    (tmp_path / "other.json").write_text(json.dumps({**card, "method": "isnet"}))
    shutil.copy(tmp_path / "ckpt.safetensors", tmp_path / "other.safetensors")
    cases["a isnet checkpoint"] = train_cmd(photos, tmp_path / "d", "--init-from", str(tmp_path / "other"))
    for reason, argv in cases.items():
        capsys.readouterr()
        assert main(argv) == 2, reason
        err = capsys.readouterr().err
        assert reason in err and err.count("\n") == 1 and "Traceback" not in err, (reason, err)


def test_warm_up_scales_each_step_and_composes_with_the_schedule():
    from backend.training.trainer import warmed_up

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    seen = []
    for step in range(6):
        with warmed_up({"g": opt}, step, warmup=4):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
        sched.step()
    # planned 1, 1, 0.5, 0.5, 0.25, 0.25 times the warm-up's 1/4, 2/4, 3/4, then 1
    assert seen == pytest.approx([0.25, 0.5, 0.375, 0.5, 0.25, 0.25])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.125)  # the schedule alone, untouched by the warm-up


def _png_claiming(w: int, h: int) -> bytes:
    """A PNG header for w x h with no pixels: past PIL's decompression-bomb limit, opening it raises."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


def test_corrupt_photos_are_skipped_and_counted_and_the_run_goes_on(tmp_path, capsys):
    root = tmp_path / "set"
    for split, n in (("train", 3), ("val", 2)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            cv2.imwrite(str(root / split / f"{split}{i}.jpg"), photo_like(80, 90, seed=i))
    good = (root / "train" / "train0.jpg").read_bytes()
    (root / "train" / "empty.jpg").write_bytes(b"")
    (root / "train" / "cut.jpg").write_bytes(good[:200])
    (root / "train" / "bomb.png").write_bytes(_png_claiming(30000, 30000))
    (root / "val" / "noise.jpg").write_bytes(np.random.default_rng(0).bytes(5000))
    assert main(train_cmd(root, tmp_path / "m", "--steps", "8", "--set", "val_every=4")) == 0
    out = capsys.readouterr().out
    meta = json.loads((tmp_path / "m.json").read_text())
    skipped = meta["training"]["data"]["unreadable_photos"]
    assert 2 <= skipped <= 4  # the validation one, and the training ones the 32 samples drew
    assert f"{skipped} unreadable photo(s) skipped" in out and "noise.jpg" in out
    assert set(meta["metrics"]) == {"psnr", "ssim", "l1", "psnr_image", "ssim_image"}  # over the readable photos


def test_out_where_nothing_can_be_saved_is_refused_before_the_first_step(photos, tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    assert main(train_cmd(photos, tmp_path / "a-file" / "m", "--steps", "2")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "a-file is a file" in err and len(err.splitlines()) == 1, err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        assert main(train_cmd(photos, locked / "m", "--steps", "2")) == 2
        assert "not writable" in capsys.readouterr().err


def _break_json(path: Path) -> None:
    path.write_text('{"step": 4, "st')


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


@pytest.mark.parametrize("damage", ["latest.json", "newest weights", "newest state"])
def test_resume_falls_back_to_the_newest_checkpoint_that_loads(photos, tmp_path, damage, recwarn):
    steps = ["--set", "save_every=2", "--set", "val_every=100"]
    assert main(train_cmd(photos, tmp_path / "whole", "--steps", "6", *steps)) == 0
    out = tmp_path / "m"
    assert main(train_cmd(photos, out, "--steps", "4", *steps)) == 0
    folder = tmp_path / "m.train"
    if damage == "latest.json":
        _break_json(folder / "latest.json")
    elif damage == "newest weights":
        _truncate(folder / "step-00000004.safetensors")
    else:
        _truncate(folder / "step-00000004.state.pt")
    assert main(train_cmd(photos, out, "--steps", "6", "--resume")) == 0
    a, b = final_weights(tmp_path / "whole"), final_weights(out)
    assert all(torch.equal(a[k], b[k]) for k in a)  # from step 4 or step 2, resumed exactly
    said = " ".join(str(w.message) for w in recwarn)
    assert ("latest.json is unreadable" if damage == "latest.json" else "step-00000004 does not load") in said


def test_a_run_removes_what_a_killed_save_left_and_writes_files_0644(photos, tmp_path, capsys):
    out = tmp_path / "m"
    folder = tmp_path / "m.train"
    folder.mkdir()
    left = [folder / ".step-00000002.safetensors.1a2b3c4d.tmp", tmp_path / ".m.json.5e6f7a8b.tmp",
            tmp_path / ".m.safetensors.0badcafe.tmp"]
    other = tmp_path / ".m-other.json.0badcafe.tmp"  # another run's: not ours to remove
    for path in left + [other]:
        path.write_bytes(b"partial")
    umask = os.umask(0o022)
    try:
        assert main(train_cmd(photos, out, "--steps", "2")) == 0
    finally:
        os.umask(umask)
    assert not any(p.exists() for p in left) and other.exists()
    assert "removed 3 partly written file(s)" in capsys.readouterr().out
    written = [p for p in folder.iterdir() if p.is_file()] + [tmp_path / "m.json", tmp_path / "m.safetensors"]
    assert {oct(p.stat().st_mode & 0o777) for p in written} == {"0o644"}, [(p.name, oct(p.stat().st_mode)) for p in written]


def test_a_size_the_method_cannot_train_at_is_refused_with_the_smallest_that_works(photos, tmp_path, capsys):
    # The tiny network halves its map three times: at 4 px its skips no longer line up.
    assert main(train_cmd(photos, tmp_path / "m", "--size", "4", "--steps", "2")) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --size 4 is too small for tiny --recipe paper: the smallest that works is 8", err
    assert main(train_cmd(photos, tmp_path / "m", "--size", "12", "--steps", "2")) == 2
    assert "it takes multiples of 8, e.g. 16" in capsys.readouterr().err
    assert main(train_cmd(photos, tmp_path / "m", "--size", "8", "--steps", "2")) == 0


def test_cisi_refuses_a_size_its_networks_cannot_take(photos, tmp_path, capsys):
    # --recipe small --size 64 crashed on the first step (the 16 px dilation of the inferred-content encoder had
    # nothing to reflect at a quarter of 64 px; 68 is the smallest that trains). The same networks with a few
    # channels and dilations up to 8 stop at the discriminator's coarsest scale instead, below 64 px.
    narrow = ["--set", "dim=8", "--set", "mlp_dim=16", "--set", "d_dim=8", "--set", "dilations=[1,2,4,8]", "--set", "batch=2"]
    argv = ["train", "--method", "cisi", "--recipe", "small", "--data", str(photos), "--out", str(tmp_path / "c"),
            "--device", "cpu", "--steps", "1", *narrow]
    assert main([*argv, "--size", "60"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --size 60 is too small for cisi --recipe small: the smallest that works is 64", err


def test_card_counts_training_time_over_every_restart(photos, tmp_path):
    out = tmp_path / "timed"
    assert main(train_cmd(photos, out, "--steps", "3")) == 0
    first = json.loads((tmp_path / "timed.json").read_text())["training"]
    assert first["seconds"] > 0 and first["hours"] == round(first["seconds"] / 3600, 2)
    # As if the first process had trained for 1000 s: the resumed run adds its own time to that.
    state_card = tmp_path / "timed.train" / "step-00000003.json"
    card = json.loads(state_card.read_text())
    card["training"]["seconds"] = 1000.0
    state_card.write_text(json.dumps(card))
    started = time.perf_counter()
    assert main(train_cmd(photos, out, "--resume", "--steps", "6")) == 0
    second = json.loads((tmp_path / "timed.json").read_text())["training"]
    assert second["steps"] == 6 and 1000 < second["seconds"] < 1000 + time.perf_counter() - started
