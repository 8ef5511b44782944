"""Semantic inpainting (Yeh et al.): the DCGAN, the latent search, Poisson blending, serving and cancelling."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import requests
import torch
import torch.nn.functional as F
from conftest import fill_box_and_check, photo_like, rect_mask
from torch import nn

from backend.engines.base import InpaintOptions, Progress
from backend.engines.poisson import poisson_blend
from backend.engines.registry import Registry
from backend.methods import get_method
from backend.methods.semantic.method import BLEND_SWEEPS
from backend.methods.semantic.model import Discriminator, Generator
from backend.methods.semantic.search import importance_weights, search_latent
from backend.training import checkpoint
from backend.training.masks import bucket_mask
from backend.training.method import StepContext

SEMANTIC = get_method("semantic")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_networks(seed: int = 0) -> tuple[Generator, Discriminator]:
    torch.manual_seed(seed)
    return Generator(8).eval(), Discriminator(8).eval()


def laplacian(x: torch.Tensor) -> torch.Tensor:
    kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]])[None, None]
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate").flatten(0, 1)[:, None], kernel).view_as(x)


def test_importance_weights_follow_eq_2_on_a_hand_checked_case():
    known = torch.ones(1, 1, 5, 5)
    known[..., 2, 2] = 0  # one missing pixel in the middle
    known[..., 0, 0] = 0  # and one in a corner
    w = importance_weights(known, window=3)[0, 0]
    expected = torch.zeros(5, 5)
    for y, x in [(1, 1), (1, 2), (1, 3), (2, 1), (2, 3), (3, 1), (3, 2), (3, 3)]:
        expected[y, x] = 1 / 9  # one missing pixel among the 9 of a full window
    expected[0, 1] = 1 / 6  # the window is cut to the image: 2 rows x 3 columns, one missing (the corner)
    expected[1, 0] = 1 / 6
    expected[1, 1] = 2 / 9  # both missing pixels in its window
    assert torch.allclose(w, expected)  # missing pixels and far-away known ones weigh 0

    # The paper's window of 7 around a 32x32 central block of a 64x64 image.
    known = 1 - torch.from_numpy(bucket_mask("centre 1/4", 0, 64, 64) > 0).float()[None, None]
    w = importance_weights(known)[0, 0]
    assert w[15, 32] == pytest.approx(21 / 49)  # just above the block: 3 of the 7 rows are missing
    assert w[13, 32] == pytest.approx(7 / 49) and w[12, 32] == 0  # 3 pixels away counts, 4 pixels away not
    assert (w[16:48, 16:48] == 0).all()
    with pytest.raises(ValueError, match="odd"):
        importance_weights(known, window=4)


def test_dcgan_is_the_papers_shape():
    G, D = Generator(), Discriminator()
    deconvs = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert G.project.in_features == 100 and G.project.out_features == 512 * 4 * 4
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in deconvs] == [
        (512, 256, (5, 5), (2, 2)), (256, 128, (5, 5), (2, 2)), (128, 64, (5, 5), (2, 2)), (64, 3, (5, 5), (2, 2))]
    convs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert [(m.out_channels, m.stride) for m in convs] == [(64, (2, 2)), (128, (2, 2)), (256, (2, 2)), (512, (2, 2))]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == 3  # none on the first layer
    with torch.no_grad():
        x = G.eval()(torch.rand(3, 100) * 2 - 1)
        logits = D.eval()(x)
    assert x.shape == (3, 3, 64, 64) and -1 <= x.min() and x.max() <= 1
    assert logits.shape == (3, 2)  # the two-class softmax
    paper = SEMANTIC.resolve_config("paper", {})
    assert (paper["size"], paper["width"], paper["batch"], paper["lr"], paper["betas"][0]) == (64, 64, 128, 2e-4, 0.5)
    assert (paper["prior_weight"], paper["window"], SEMANTIC.params["iterations"].default) == (0.003, 7, 1500)
    with pytest.raises(ValueError, match="64x64"):
        SEMANTIC(SEMANTIC.resolve_config("paper", {"size": 128}), torch.device("cpu"))


def test_the_dcgan_learns_a_tiny_fixed_batch():
    torch.manual_seed(0)
    method = SEMANTIC(SEMANTIC.resolve_config("paper", {"width": 8, "lr": 2e-3}), torch.device("cpu"))
    ctx = StepContext(method.build_optimizers(), torch.device("cpu"), amp=False)
    images = torch.from_numpy(np.stack([photo_like(64, 64, seed=s) for s in range(4)])).permute(0, 3, 1, 2).float() / 255
    G = method.nets["generator"]
    z = torch.rand(32, 100, generator=torch.Generator().manual_seed(1)) * 2 - 1

    def distance() -> float:
        """Mean squared distance from generated samples to their nearest training image."""
        G.eval()
        with torch.no_grad():
            x = (G(z) + 1) / 2
        G.train()
        return float(((x[:, None] - images[None]) ** 2).mean((2, 3, 4)).min(1).values.mean())

    before = distance()
    history = [method.train_step(images, torch.zeros(4, 1, 64, 64), ctx, step) for step in range(200)]
    assert all(np.isfinite(v) for h in history for v in h.values())
    assert np.mean([h["d"] for h in history[10:20]]) < 0.5 * history[0]["d"]  # D learns to tell them apart
    assert distance() < 0.5 * before  # and G's samples move towards the photos


class LinearGenerator(nn.Module):
    """G(z) = A z: the best code for a target is known, so the search can be checked against it."""

    z_dim = 4

    def __init__(self):
        super().__init__()
        self.A = torch.randn(3 * 64 * 64, 4, generator=torch.Generator().manual_seed(3)) * 0.1

    def forward(self, z):
        return (z @ self.A.T).view(-1, 3, 64, 64)


class Indifferent(nn.Module):
    """A discriminator with no opinion: the prior loss is constant."""

    def forward(self, x):
        return torch.zeros(x.shape[0], 2) + 0 * x.sum()


def test_search_keeps_z_in_range_and_finds_the_code_that_fits():
    G = LinearGenerator()
    wanted = torch.tensor([[3.0, -3.0, 0.5, -0.2]])  # two coordinates out of range: the best codes are clipped
    known = torch.ones(1, 1, 64, 64)
    known[..., 16:48, 16:48] = 0
    calls = []
    found = search_latent(G, Indifferent(), G(wanted), known, iterations=300, candidates=3, lr=0.05,
                          generator=torch.Generator().manual_seed(0), progress=calls.append)
    z = found.z[0]
    assert z.abs().max() <= 1
    assert z[0] == 1 and z[1] == -1  # pushed against the bounds the whole way, and held there
    assert z[2:].tolist() == pytest.approx([0.5, -0.2], abs=0.1)  # the in-range part is found
    assert found.loss[0] < 0.7 * found.first_loss[0]  # as far as the clipped coordinates allow
    assert calls[0] == 1 and calls[-1] == 300
    assert torch.allclose(G(found.z), found.image)  # the image is G of the code returned


def test_the_best_of_many_candidates_wins():
    G, D = tiny_networks()
    with torch.no_grad():
        target = G(torch.rand(2, 100, generator=torch.Generator().manual_seed(5)) * 2 - 1)
    known = torch.ones(2, 1, 64, 64)
    known[..., 16:48, 16:48] = 0
    one = search_latent(G, D, target, known, iterations=0, candidates=1, generator=torch.Generator().manual_seed(0))
    many = search_latent(G, D, target, known, iterations=0, candidates=32, generator=torch.Generator().manual_seed(0))
    assert (many.loss <= one.loss).all() and found_in_range(many.z)


def found_in_range(z: torch.Tensor) -> bool:
    return bool(z.abs().max() <= 1)


def test_poisson_blending_keeps_the_known_region_and_the_generated_gradients():
    torch.manual_seed(0)
    fill = F.interpolate(torch.rand(1, 3, 8, 8), size=(64, 64), mode="bicubic", align_corners=False)  # "G(z)"
    photo = torch.rand(1, 3, 64, 64) * 0.2 + 0.5
    for bucket in ("centre 1/4", "pattern 25%", "pixels 80%", "half"):
        hole = torch.from_numpy(bucket_mask(bucket, 1, 64, 64) > 0).float()[None, None]
        out = poisson_blend(fill, photo, hole, sweeps=BLEND_SWEEPS) * hole + photo * (1 - hole)
        assert torch.equal(out[(hole == 0).expand_as(out)], photo[(hole == 0).expand_as(photo)])
        inside = (hole > 0).expand_as(out)
        residual = (laplacian(out) - laplacian(fill))[inside].abs()
        assert residual.max() < 1e-3, bucket  # the Poisson equation holds at every hole pixel
        assert laplacian(fill)[inside].abs().mean() > 10 * residual.mean()


def export_tiny(folder, name="semantic-test"):
    config = SEMANTIC.resolve_config("small", {"width": 8})
    torch.manual_seed(0)
    method = SEMANTIC(config, torch.device("cpu"))
    checkpoint.export(folder / name, checkpoint.network_tensors(method.nets, SEMANTIC.inference_networks),
                      {"method": "semantic", "config": {**config, "method": "semantic"}, "step": 0})
    return folder / name


@pytest.mark.parametrize("shape, hole", [((300, 200), (150, 180, 20, 12)), ((17, 41), (2, 30, 6, 9)),
                                         ((64, 64), (0, 0, 64, 32))])
def test_served_through_the_registry_for_any_image_and_selection(tmp_path, shape, hole):
    export_tiny(tmp_path)
    engine = Registry(tmp_path, torch.device("cpu")).get("semantic-test")
    assert engine.size.fixed and engine.size.native == 64
    assert {"iterations", "candidates", "blend"} <= set(engine.params) and engine.params["iterations"].default == 1500
    fill_box_and_check(engine, shape, hole, params={"iterations": 5, "candidates": 2})


def test_the_search_reports_progress_and_stops_when_cancelled():
    import threading

    config = SEMANTIC.resolve_config("small", {"width": 8})
    method = SEMANTIC(config, torch.device("cpu"))
    for net in method.nets.values():
        net.eval()
    cancel, seen = threading.Event(), []

    def report(fraction, message):
        seen.append((fraction, message))
        if fraction > 0.01:
            cancel.set()  # the user presses Cancel once the search is under way

    image, hole = torch.rand(1, 3, 64, 64), torch.zeros(1, 1, 64, 64)
    hole[..., 20:40, 20:40] = 1
    options = InpaintOptions(params={"iterations": 100_000, "candidates": 1, "blend": "poisson"})
    start = time.perf_counter()
    with pytest.raises(Exception, match="cancelled"):
        method.serve(image, hole, options, Progress(report, cancel))
    assert time.perf_counter() - start < 30 and "searching the latent space" in seen[-1][1]


def test_a_job_on_the_server_can_be_cancelled_mid_search(server):
    path = export_tiny(server.models_dir, "semantic-job")
    try:
        models = {m["id"]: m for m in requests.get(server.url + "/api/v1/models", timeout=10).json()["models"]}
        assert models["semantic-job"]["method"] == "semantic" and "iterations" in models["semantic-job"]["params"]
        img, mask = photo_like(120, 160), rect_mask(120, 160, (40, 50, 30, 30))
        job = server.post_fill(img, mask, path="/api/v1/jobs", model="semantic-job",
                               options=json.dumps({"iterations": 20_000, "candidates": 1})).json()
        deadline = time.time() + 60
        while time.time() < deadline:
            state = requests.get(f"{server.url}/api/v1/jobs/{job['id']}", timeout=10).json()
            if state["state"] == "running" and state["progress"] > 0.005:
                break
            time.sleep(0.05)
        assert "searching" in state["message"], state
        assert requests.delete(f"{server.url}/api/v1/jobs/{job['id']}", timeout=10).status_code == 200
        while time.time() < deadline:
            state = requests.get(f"{server.url}/api/v1/jobs/{job['id']}", timeout=10).json()
            if state["state"] != "running":
                break
            time.sleep(0.05)
        assert state["state"] == "cancelled" and time.time() < deadline
        bad = server.post_fill(img, mask, model="semantic-job", options=json.dumps({"iterations": -3}))
        assert bad.status_code == 400 and "iterations" in bad.json()["detail"]
    finally:
        for suffix in (".json", ".safetensors"):
            path.with_suffix(suffix).unlink(missing_ok=True)


def test_one_command_trains_it_and_shows_what_the_dcgan_draws(tmp_path):
    import cv2

    from backend.cli import main

    for i in range(4):
        cv2.imwrite(str(tmp_path / f"p{i}.png"), photo_like(90 + 10 * i, 120, seed=i))
    out = tmp_path / "models" / "my-dcgan"
    assert main(["train", "--method", "semantic", "--recipe", "small", "--data", str(tmp_path), "--out", str(out),
                 "--steps", "2", "--batch", "4", "--set", "width=8", "--set", "val_every=2", "--set", "workers=0",
                 "--set", "val_iterations=3", "--set", "val_candidates=2", "--device", "cpu"]) == 0
    drawn = cv2.imread(str(out.parent / "my-dcgan.train" / "samples" / "step-00000002-drawn.png"))
    assert drawn.shape == (4 * 66 + 2, 8 * 66 + 2, 3)  # 32 drawn images, 8 to a row
    engine = Registry(out.parent, torch.device("cpu")).get("my-dcgan")
    assert engine.method == "semantic" and set(engine.model.nets) == {"generator", "discriminator"}


def test_blend_paste_is_a_plain_paste_and_prior_weight_is_a_serving_option(tmp_path, monkeypatch):
    from backend.engines import region
    from backend.engines.region import fill_region
    from backend.methods.semantic import method as semantic_method
    from backend.request import FillRequest, Output

    export_tiny(tmp_path)
    engine = Registry(tmp_path, torch.device("cpu")).get("semantic-test")
    image = photo_like(64, 64, seed=1)
    mask = rect_mask(64, 64, (20, 16, 24, 30)).astype(np.float32) / 255
    params = {"iterations": 0, "candidates": 1, "blend": "paste"}
    out = fill_region(engine, FillRequest(image, mask, output=Output.IMAGE, seed=3, params=params)).pixels
    t_image = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255
    hole = torch.from_numpy(mask)[None, None]
    with torch.no_grad():
        direct = engine.model.complete(t_image * (1 - hole), hole, 0, 1, "paste", InpaintOptions(seed=3).generator("cpu"))
    direct = np.round(direct[0].permute(1, 2, 0).numpy() * 255)
    inside = mask > 0
    # The generated pixels as they are: no tone shift toward the border (the region pipeline's default).
    assert np.abs(out[inside].astype(np.float32) - direct[inside]).max() <= 1
    assert np.array_equal(out[~inside], image[~inside])

    # Also where the crop is scaled to 64x64 and back (the fill then differs from the photo around the hole):
    # what the engine returned is pasted as it is.
    big = photo_like(160, 160, seed=1)
    big_mask = rect_mask(160, 160, (50, 40, 60, 70)).astype(np.float32) / 255
    returned, tone_matched = [], []
    run_engine, match_tone = region.run_engine, region.match_tone
    monkeypatch.setattr(region, "run_engine", lambda *a: returned.append((a[3].box, run_engine(*a))) or returned[-1][1])
    monkeypatch.setattr(region, "match_tone", lambda *a: tone_matched.append(1) or match_tone(*a))
    out = fill_region(engine, FillRequest(big, big_mask, output=Output.IMAGE, params=params)).pixels
    (x0, y0, x1, y1), fill = returned[0]
    inside = big_mask[y0:y1, x0:x1] > 0
    assert not tone_matched
    assert np.abs(out[y0:y1, x0:x1][inside].astype(np.float32) - np.round(fill * 255)[inside]).max() <= 1
    fill_region(engine, FillRequest(big, big_mask, params={**params, "blend": "poisson"}))
    assert not tone_matched  # Poisson blending, inside the engine, needs no tone match either

    # The prior's weight (lambda) reaches the search: 0 is the paper's Fig. 4 without the prior.
    assert engine.params["prior_weight"].default == 0.003
    seen = []
    search = semantic_method.search_latent
    monkeypatch.setattr(semantic_method, "search_latent", lambda *a, **k: seen.append(k["prior_weight"]) or search(*a, **k))
    for weight in (0.0, 0.5):
        fill_region(engine, FillRequest(image, mask, params={**params, "prior_weight": weight}))
    assert seen == [0.0, 0.5]
    # Without the option, the weight the checkpoint was trained and validated with.
    config = SEMANTIC.resolve_config("small", {"width": 8, "prior_weight": 0.02})
    checkpoint.export(tmp_path / "semantic-prior", checkpoint.network_tensors(SEMANTIC(config, torch.device("cpu")).nets,
                      SEMANTIC.inference_networks), {"method": "semantic", "config": {**config, "method": "semantic"}, "step": 1})
    fill_region(Registry(tmp_path, torch.device("cpu")).get("semantic-prior"), FillRequest(image, mask, params=params))
    assert seen[-1] == 0.02
    from backend.engines.base import OptionError

    for bad in ("nan", "inf", -1):
        with pytest.raises(OptionError, match="prior_weight"):
            engine.parse_params({"prior_weight": bad})
