"""Every shell command in the READMEs runs as written, in a fresh folder that holds only what the READMEs assume.

The fenced bash blocks of README.md, krita_plugin/README.md and gimp_plugin/README.md run in order, each block as
one bash script (set -euo pipefail), in a temporary folder with HOME, XDG_DATA_HOME and XDG_CONFIG_HOME inside it:
photo.jpg, photo.png, mask.png, canvas.png (a photo in a transparent frame), painting.jpg, photos/ and masks/, a few photos in ~/Pictures/landscapes, a copy of
krita_plugin/ (for build_zip.py), and the imt checkpoint `my-imt` that the style-transfer example names.
`inpaint-backend` is this checkout's (a shim first on PATH).

What the commands get on top of what is written, so the test takes minutes, not hours:
- `inpaint-backend serve` starts once, before the first block, in the background; it and every
  127.0.0.1:7860 in the commands use a free port instead of 7860.
- the arguments in EXTRA are appended (fewer steps, smaller crops and photos).

Commands that cannot run here are skipped; SKIP says why, and each reason must still match a README line.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import requests
from conftest import ROOT, free_port, photo_like, rect_mask

from backend.training import photos as open_photos

READMES = ["README.md", "krita_plugin/README.md", "gimp_plugin/README.md"]

SKIP = {
    r"^python3 -m venv ": "makes the virtual environment these tests already run in",
    r"^pip install ": "installs into this Python; CI runs the install lines (.ci/run)",
    r"^sudo apt-get install ": "installs Debian packages as root; prepare-photos runs when they are installed",
    r"^torchrun ": "needs several GPUs (tests/test_ddp.py trains under torchrun on CPUs)",
    r"^inpaint-backend setup-training": "runs pip and downloads VGG19, and tests never download "
                                        "(tests/test_setup_training.py covers it)",
    r"^python -m pytest ": "runs tests: the suite runs them itself",
}

_SMALL_TRAIN = ["--steps", "2", "--size", "32", "--batch", "2", "--set", "workers=0", "--set", "val_every=2",
                "--set", "val_per_photo=1", "--set", "val_crops=2"]
EXTRA = {
    r"^inpaint-backend train .*--resume": [*_SMALL_TRAIN[2:], "--steps", "3"],  # extends the run above by a step
    r"^inpaint-backend train ": _SMALL_TRAIN,
    r"^inpaint-backend eval ": ["--max-photos", "2", "--size", "64"],
    r"^inpaint-backend prepare-photos ": ["--max-side", "256"],
}

SERVE = re.compile(r"^inpaint-backend serve(\s+#.*)?$")


def shell_blocks(readme: Path) -> list[list[str]]:
    """The lines of each ```bash / ```sh block."""
    blocks, current = [], None
    for line in readme.read_text().splitlines():
        fence = re.match(r"^```(\w*)\s*$", line.strip())
        if fence and current is None:
            current = [] if fence.group(1) in ("bash", "sh", "shell") else False
        elif fence:
            if current:
                blocks.append(current)
            current = None
        elif current is not False and current is not None and line.strip():
            current.append(line.strip())
    return blocks


def skip_reason(line: str) -> str | None:
    return next((reason for pattern, reason in SKIP.items() if re.search(pattern, line)), None)


def with_extra(line: str, port: int) -> str:
    line = line.replace("127.0.0.1:7860", f"127.0.0.1:{port}")
    for pattern, extra in EXTRA.items():
        if re.search(pattern, line):
            return re.sub(r"\s+#.*$", "", line) + " " + " ".join(extra)
    return line


def wallpapers_installed() -> bool:
    return any(p.is_file() for s in open_photos.sources() if s.split == "trainval" and "wallpapers" in s.name
               for p in s.files)


def make_work_folder(work: Path) -> dict[str, str]:
    """The files the READMEs' commands read, and the environment they run in."""
    home = work / "home"
    for d in (work / "photos", work / "masks", home / "Pictures" / "landscapes", work / "shims"):
        d.mkdir(parents=True)
    cv2.imwrite(str(work / "photo.jpg"), photo_like(72, 96, seed=1)[:, :, ::-1])
    cv2.imwrite(str(work / "photo.png"), photo_like(72, 96, seed=1)[:, :, ::-1])
    canvas = np.zeros((72, 96, 4), np.uint8)
    canvas[8:-8, 8:-8] = cv2.cvtColor(photo_like(56, 80, seed=1)[:, :, ::-1], cv2.COLOR_BGR2BGRA)
    cv2.imwrite(str(work / "canvas.png"), canvas)
    cv2.imwrite(str(work / "painting.jpg"), photo_like(64, 64, seed=5)[:, :, ::-1])
    cv2.imwrite(str(work / "mask.png"), rect_mask(72, 96, (30, 20, 24, 18)))
    for i in range(2):
        cv2.imwrite(str(work / "photos" / f"p{i}.jpg"), photo_like(64, 64, seed=i)[:, :, ::-1])
        cv2.imwrite(str(work / "masks" / f"p{i}.png"), rect_mask(64, 64, (10 + i, 12, 16, 16)))
    for i in range(6):
        cv2.imwrite(str(home / "Pictures" / "landscapes" / f"l{i}.jpg"), photo_like(80, 80, seed=10 + i)[:, :, ::-1])
    shutil.copytree(ROOT / "krita_plugin", work / "krita_plugin", ignore=shutil.ignore_patterns("__pycache__"))
    shim = work / "shims" / "inpaint-backend"
    shim.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                    "from backend.cli import main\nsys.exit(main())\n")
    shim.chmod(0o755)
    (work / "shims" / "python").symlink_to(sys.executable)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "XDG_"))}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"), XDG_CONFIG_HOME=str(home / ".config"),
               PATH=f"{work / 'shims'}{os.pathsep}{os.environ['PATH']}", PYTHONUNBUFFERED="1")
    return env


def run_block(lines: list[str], work: Path, env: dict[str, str], transcript: list[str]) -> None:
    script = ["set -euo pipefail"]
    for line in lines:
        script += [f"printf '%s\\n' {shlex.quote('$ ' + line)}", line]
    res = subprocess.run(["bash", "-c", "\n".join(script)], cwd=work, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, timeout=900)
    transcript.append(res.stdout)
    assert res.returncode == 0, "\n".join(transcript)[-6000:]


@pytest.mark.slow
def test_every_readme_command_runs_as_written(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    env = make_work_folder(work)
    blocks = [(name, block) for name in READMES for block in shell_blocks(ROOT / name)]
    lines = [line for _, block in blocks for line in block]
    assert any(SERVE.match(line) for line in lines) and len(lines) > 15
    unused = [p for p in SKIP if not any(re.search(p, line) for line in lines)]
    assert not unused, f"skip rules that match no README command any more: {unused}"

    # What the style-transfer example assumes: an Infer-Match-Translate checkpoint named my-imt.
    tiny_imt = ["--recipe", "small", "--set", "g1_dim=8", "--set", "g1_blocks=2", "--set", "g2_widths=[16,16,16,16,16,16,16]",
                "--set", "g2_tail=[8,8]", "--set", "d_dim=8", *_SMALL_TRAIN, "--size", "64"]
    subprocess.run(["inpaint-backend", "train", "--method", "imt", "--data", str(work / "home" / "Pictures" / "landscapes"),
                    "--out", "models/my-imt", *tiny_imt],
                   cwd=work, env=env, check=True, capture_output=True, timeout=600)
    if not wallpapers_installed():  # what prepare-photos would have made: eval still gets its test photos
        shutil.copytree(work / "photos", work / "data" / "open-photos" / "test")

    port = free_port()
    serve_line = next(line for line in lines if SERVE.match(line))
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(["bash", "-c", f"exec {re.sub(r'[ ]+#.*$', '', serve_line)} --port {port}"], cwd=work,
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    transcript: list[str] = [f"$ {serve_line}  (in the background, on port {port})"]
    try:
        for _ in range(300):
            try:
                requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1)
                break
            except requests.ConnectionError:
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                time.sleep(0.2)
        for name, block in blocks:
            runnable = []
            for line in block:
                reason = skip_reason(line)
                if reason is None and "prepare-photos" in line and not wallpapers_installed():
                    reason = "the wallpaper packages are not installed (the apt-get line above)"
                if SERVE.match(line):
                    reason = "started in the background before the first block"
                if reason:
                    transcript.append(f"{name}: skipped: {line}  ({reason})")
                else:
                    runnable.append(with_extra(line, port))
            if runnable:
                run_block(runnable, work, env, transcript)
    finally:
        server.terminate()
        server.wait(10)
        log.close()
    print("\n".join(transcript))

    filled = cv2.imread(str(work / "filled.png"), cv2.IMREAD_COLOR)
    assert filled is not None and filled.shape == (72, 96, 3)
    assert sorted(p.name for p in (work / "out").iterdir()) == ["p0.png", "p1.png"]
    assert (work / "models" / "my-landscapes.safetensors").is_file() and (work / "styled.png").is_file()
    assert (work / "eval" / "eval.md").is_file() and (work / "dist" / "inpaint_selection-0.1.0.zip").is_file()
    assert (work / "home" / ".local" / "share" / "krita" / "pykrita" / "inpaint_selection" / "docker.py").is_file()
    assert (work / "home" / ".config" / "GIMP" / "3.0" / "plug-ins" / "inpaint-selection" / "inpaint-selection.py").is_file()
    assert not np.array_equal(filled, cv2.imread(str(work / "photo.png"), cv2.IMREAD_COLOR))
