"""`inpaint-backend fill` on files and folders."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, decode, photo_like, png, rect_mask

from backend.cli import main


def test_fill_one_file(tmp_path):
    img, mask = photo_like(64, 80), rect_mask(64, 80, (10, 10, 20, 20))
    (tmp_path / "a.png").write_bytes(png(img))
    (tmp_path / "m.png").write_bytes(png(mask))
    assert main(["fill", str(tmp_path / "a.png"), str(tmp_path / "m.png"), "-o", str(tmp_path / "out.png"),
                 "--models-dir", str(tmp_path), "--device", "cpu"]) == 0
    out = decode((tmp_path / "out.png").read_bytes())
    assert np.array_equal(out[mask == 0], img[mask == 0]) and not np.array_equal(out[mask > 0], img[mask > 0])


def test_fill_folder_reports_bad_files_and_goes_on(tmp_path, capsys):
    images, masks = tmp_path / "in", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(3):
        (images / f"p{i}.png").write_bytes(png(photo_like(48, 48, seed=i)))
        (masks / f"p{i}.png").write_bytes(png(rect_mask(48, 48, (5 + i, 5, 10, 10))))
    (images / "broken.png").write_bytes(b"not a png")
    (masks / "broken.png").write_bytes(png(rect_mask(48, 48, (5, 5, 10, 10))))
    code = main(["fill", str(images), str(masks), "-o", str(tmp_path / "out"), "--models-dir", str(tmp_path)])
    assert code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png", "p2.png"]
    assert "broken.png" in capsys.readouterr().err


def test_unknown_model_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "a.png").write_bytes(png(photo_like(16, 16)))
    code = main(["fill", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"),
                 "--model", "nope", "--models-dir", str(tmp_path)])
    assert code == 2 and "no model 'nope'" in capsys.readouterr().err


def test_fill_runs_with_sleeping_openmp_workers(tmp_path):
    """OpenMP workers that busy-wait between torch's many small operations took the CPU from the fill itself
    (20 s instead of 0.4 s on a busy machine); the command starts torch with them sleeping instead."""
    (tmp_path / "a.png").write_bytes(png(photo_like(32, 32)))
    (tmp_path / "m.png").write_bytes(png(rect_mask(32, 32, (8, 8, 8, 8))))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    res = subprocess.run([sys.executable, "-m", "backend.cli", "fill", str(tmp_path / "a.png"), str(tmp_path / "m.png"),
                          "-o", str(tmp_path / "o.png"), "--models-dir", str(tmp_path), "--device", "cpu"],
                         cwd=ROOT, env=dict(env, OMP_DISPLAY_ENV="VERBOSE"), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    if "GOMP_SPINCOUNT" not in res.stderr:
        pytest.skip("this torch's OpenMP runtime is not libgomp, which reports its spin count")
    assert "GOMP_SPINCOUNT = '0'" in res.stderr, res.stderr


def test_fill_variations_are_named_by_seed_and_repeat_per_seed(tmp_path):
    img = np.random.default_rng(5).integers(0, 256, (96, 96, 3), dtype=np.uint8)  # noise: many equally good copies
    mask = rect_mask(96, 96, (20, 30, 50, 30))
    (tmp_path / "a.png").write_bytes(png(img))
    (tmp_path / "m.png").write_bytes(png(mask))
    base = ["fill", str(tmp_path / "a.png"), str(tmp_path / "m.png"), "--models-dir", str(tmp_path), "--device", "cpu"]
    assert main([*base, "-o", str(tmp_path / "out.png"), "--seed", "7", "--variations", "3"]) == 0
    assert sorted(p.name for p in tmp_path.glob("out*")) == ["out-seed7.png", "out-seed8.png", "out-seed9.png"]
    assert main([*base, "-o", str(tmp_path / "again.png"), "--seed", "8"]) == 0
    fills = {n: decode((tmp_path / f"{n}.png").read_bytes()) for n in ("out-seed7", "out-seed8", "out-seed9", "again")}
    assert np.array_equal(fills["again"], fills["out-seed8"])  # the same seed, the same fill
    assert not np.array_equal(fills["out-seed7"], fills["out-seed8"])
    assert not np.array_equal(fills["out-seed8"], fills["out-seed9"])


def test_fill_with_sampling_area_and_transparent_pixels(tmp_path, capsys):
    img = np.zeros((40, 48, 4), np.uint8)
    img[4:-4, 4:-4, :3] = photo_like(32, 40, seed=2)
    img[4:-4, 4:-4, 3] = 255
    (tmp_path / "a.png").write_bytes(png(img))
    base = ["fill", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--models-dir", str(tmp_path)]
    assert main([*base, "--fill-transparent", "--source-preset", "around", "--source-width", "12"]) == 0
    assert (decode((tmp_path / "o.png").read_bytes())[:, :, 3] == 255).all()
    assert main(base) == 2 and "MASK is required" in capsys.readouterr().err
    (tmp_path / "s.png").write_bytes(png(np.zeros((40, 47), np.uint8)))
    assert main([*base, "--fill-transparent", "--source", str(tmp_path / "s.png")]) == 1
    assert "source 47x40" in capsys.readouterr().err
    (tmp_path / "s.png").write_bytes(png(np.zeros((40, 48), np.uint8)))
    assert main([*base, "--fill-transparent", "--source", str(tmp_path / "s.png")]) == 1
    assert "sampling area" in capsys.readouterr().err
