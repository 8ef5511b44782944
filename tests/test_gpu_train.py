"""benchmarks/gpu_train.sh on the CPU with the tiny method: a timed resume, its state split and joined back."""
from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys

import cv2
import pytest
from conftest import ROOT, photo_like

SCRIPT = ROOT / "benchmarks" / "gpu_train.sh"
TRAIN = f"{sys.executable} tests/tiny_cli.py"


def latest_step(run) -> int:
    return json.loads((run.parent / (run.name + ".train") / "latest.json").read_text())["step"]


def gpu_train(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, INPAINT_TRAIN=TRAIN, PART_BYTES="20000")
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(shutil.which("split") is None or shutil.which("timeout") is None, reason="needs coreutils")
def test_timed_resume_hands_back_a_split_state_that_resumes_again(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        cv2.imwrite(str(photos / f"p{i}.jpg"), photo_like(96, 128, seed=i))
    run = tmp_path / "runs" / "tiny-run"
    first = subprocess.run([sys.executable, "tests/tiny_cli.py", "train", "--method", "tiny", "--data", str(photos),
                            "--out", str(run), "--device", "cpu", "--steps", "3"], cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert latest_step(run) == 3

    out = tmp_path / "back"
    done = gpu_train(str(run), str(photos), "0.25", str(out), "--device", "cpu", "--steps", "100000",
                     "--set", "save_every=100000", "--set", "val_every=100000")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    step = latest_step(run)
    assert 3 < step < 100000  # stopped by the time limit, and saved where it was
    lines = done.stdout.strip().splitlines()
    assert lines[-2] == f"steps: 3 -> {step} of 100000"
    assert lines[-1].startswith("images/s: ") and float(lines[-1].split()[1]) > 0

    state = out / "tiny-run.train"
    parts = sorted(p for p in state.iterdir() if ".part-" in p.name)
    assert parts and all(p.stat().st_size <= 20000 for p in parts)  # the state is larger than one part
    stem = json.loads((state / "latest.json").read_text())["stem"]
    assert (state / f"{stem}.state.pt.sha256").is_file() and not (state / f"{stem}.state.pt").exists()

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert gpu_train("join", str(copy / "tiny-run.train")).returncode == 0
    assert filecmp.cmp(copy / "tiny-run.train" / f"{stem}.state.pt", run.parent / "tiny-run.train" / f"{stem}.state.pt",
                       shallow=False)

    # The pieces, as carried to another machine, resume there: joined by the script itself.
    again = gpu_train(str(out / "tiny-run"), str(photos), "0.2", str(tmp_path / "back2"), "--device", "cpu",
                      "--steps", "100000", "--set", "save_every=100000", "--set", "val_every=100000")
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    assert f"resuming tiny (paper) at step {step} of 100000" in again.stdout
    assert latest_step(out / "tiny-run") > step

    # A damaged part is refused, not resumed from.
    damaged = tmp_path / "damaged"
    shutil.copytree(tmp_path / "back2", damaged)
    part = sorted((damaged / "tiny-run.train").glob("*.state.pt.part-aa"))[0]
    part.write_bytes(b"x" + part.read_bytes()[1:])
    bad = gpu_train("join", str(damaged / "tiny-run.train"))
    assert bad.returncode == 1 and "do not match" in bad.stderr
