"""`eval` numbers against an independent computation, and the files it writes."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from conftest import photo_like
from scipy.ndimage import gaussian_filter

from backend.cli import main
from backend.engines.registry import Registry
from backend.training.evaluate import make_cases, resolve, score, summarize
from backend.training.masks import hole_ratio


def independent_ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wang et al.'s SSIM map per channel with scipy's Gaussian filter (sigma 1.5, 11 taps, mirrored borders)."""
    f = lambda x: gaussian_filter(x, sigma=(1.5, 1.5, 0), truncate=3.5, mode="mirror")  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))


@pytest.fixture
def photos(tmp_path):
    for i in range(2):
        cv2.imwrite(str(tmp_path / f"p{i}.png"), photo_like(90 + 20 * i, 120, seed=i))
    return tmp_path


def test_eval_numbers_match_an_independent_computation(photos):
    from backend.training.data import find_photos

    cases = make_cases(find_photos(photos), 64, ["strokes 20-30%", "blobs 5-15%"])
    assert len(cases) == 4
    for c in cases:
        assert 0.05 <= hole_ratio(c.mask) <= 0.30
    engines = resolve(["diffusion", "telea"], Registry(None))
    scores = score(engines, cases, keep_outputs=True)
    assert len(scores.rows) == 8
    for row, (engine_id, k) in zip(scores.rows, [(e.id, k) for e in engines for k in range(len(cases))]):
        out = scores.outputs[(engine_id, k)].astype(np.float64) / 255
        gt = cases[k].image.astype(np.float64) / 255
        hole = cases[k].mask > 0
        mse = ((out - gt) ** 2)[hole].mean()
        assert row["psnr"] == pytest.approx(10 * np.log10(1 / mse), abs=1e-3)
        assert row["l1"] == pytest.approx(np.abs(out - gt)[hole].mean(), abs=1e-5)
        assert row["ssim"] == pytest.approx(independent_ssim(out, gt)[hole].mean(), abs=1e-4)
        assert row["psnr_image"] == pytest.approx(10 * np.log10(1 / ((out - gt) ** 2).mean()), abs=1e-3)
        assert row["ssim_image"] == pytest.approx(independent_ssim(out, gt).mean(), abs=1e-4)
        assert np.array_equal(out[~hole], gt[~hole])  # only the hole was touched
    table = summarize(scores)
    diffusion = [r["psnr"] for r in scores.rows if r["engine"] == "diffusion" and r["bucket"] == "blobs 5-15%"]
    assert table["blobs 5-15%"]["diffusion"]["psnr"] == pytest.approx(np.mean(diffusion))


def test_eval_command_writes_table_json_and_grid(photos, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", "--models", "diffusion,ns", "--data", str(photos), "--out", str(out), "--size", "64",
                 "--models-dir", str(tmp_path)]) == 0
    text = (out / "eval.md").read_text()
    assert "| strokes 40-50% |" in text and "diffusion" in text and "ns" in text
    data = json.loads((out / "eval.json").read_text())
    assert len(data["rows"]) == 2 * 5 * 2
    grid = cv2.imread(str(out / "eval_grid.png"))
    assert grid.shape[0] > 5 * 64 and grid.shape[1] > 4 * 64  # 5 buckets x (input, 2 engines, truth)


def test_eval_command_runs_the_extra_buckets_and_refuses_unknown_ones(photos, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", "--models", "telea", "--data", str(photos), "--out", str(out), "--size", "24",
                 "--buckets", "centre 1/9,boxes 5-20%", "--models-dir", str(tmp_path)]) == 0
    data = json.loads((out / "eval.json").read_text())
    assert data["buckets"] == ["centre 1/9", "boxes 5-20%"] and len(data["rows"]) == 2 * 2
    assert "Whole image" in (out / "eval.md").read_text()
    assert main(["eval", "--models", "telea", "--data", str(photos), "--out", str(out), "--buckets", "circles"]) == 2
    assert "unknown bucket" in capsys.readouterr().err


def test_eval_runs_yehs_masks_with_biharmonic_and_engine_options(photos, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", "--models", "diffusion,biharmonic,telea", "--data", str(photos), "--out", str(out), "--size", "32",
                 "--buckets", "pixels 80%,half", "--option", "diffusion:sweeps=2", "--models-dir", str(tmp_path)]) == 0
    data = json.loads((out / "eval.json").read_text())
    assert data["options"] == {"diffusion": {"sweeps": 2}} and len(data["rows"]) == 3 * 2 * 2
    table = data["summary"]["pixels 80%"]
    # Scattered known pixels are what smooth interpolation is best at: every engine beats a flat fill by far.
    assert all(table[e]["psnr"] > 18 for e in ("diffusion", "biharmonic", "telea"))
    for bad, reason in ((["--option", "telea:radius=5"], "unknown option"), (["--option", "nowhere:sweeps=2"], "not evaluated"),
                        (["--option", "diffusion:sweeps=0"], ">= 1"), (["--option", "sweeps=2"], "ENGINE:KEY=VALUE")):
        assert main(["eval", "--models", "diffusion,telea", "--data", str(photos), "--out", str(out), "--size", "32",
                     "--models-dir", str(tmp_path), *bad]) == 2
        assert reason in capsys.readouterr().err
