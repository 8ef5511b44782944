"""Infer-Match-Translate: patch-swap, the networks, learning, multi-scale serving and style transfer."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_falls, fill_box_and_check, overfit, photo_batch, photo_like
from PIL import Image

from backend.cli import main as cli_main
from backend.engines.registry import Registry
from backend.methods import get_method
from backend.methods.imt import method as imt
from backend.methods.imt.model import Feature2Image, Image2Feature
from backend.methods.imt.swap import best_patches, paste_average, patch_swap
from backend.training import checkpoint
from backend.training.method import StepContext

pytestmark = pytest.mark.usefixtures("one_torch_thread")

IMT = get_method("imt")
# A few channels per layer: the paper's structure at a size a test can train.
TINY = {"g1_dim": 8, "g1_blocks": 2, "g2_widths": [16, 16, 16, 16, 16, 16, 16], "g2_tail": [8, 8], "d_dim": 8,
        "size": 64, "batch": 2, "serve_size": 256, "feature_scale": 0.05}  # as a trained run has measured it


def tiny(**overrides) -> "IMT":
    return IMT(IMT.resolve_config("small", {**TINY, **overrides}), torch.device("cpu"))


def export_tiny(stem) -> None:
    """A tiny untrained checkpoint as training exports it (with the pretrained VGG it carries)."""
    torch.manual_seed(0)
    config = IMT.resolve_config("small", TINY)
    method = IMT(config, torch.device("cpu"))
    method.build_optimizers()  # loads the pretrained VGG
    checkpoint.export(stem, checkpoint.network_tensors(method.nets, IMT.inference_networks),
                      {"method": "imt", "config": {**config, "method": "imt"}, "step": 0})


def test_patch_swap_fills_the_hole_with_the_exact_missing_patches():
    torch.manual_seed(0)
    truth = torch.randn(1, 64, 20, 20)
    truth[..., 11:19, 11:19] = truth[..., 1:9, 1:9]  # every window touching the hole exists elsewhere, intact
    hole = torch.zeros(1, 1, 20, 20)
    hole[..., 3:7, 3:7] = 1
    inferred = truth.clone()
    inferred[..., 3:7, 3:7] += 0.3 * torch.randn(64, 4, 4)  # a rough guess in the hole, as Image2Feature's
    for budget in (2**24, 50):  # one chunk, or the bank in chunks of a few patches
        out = patch_swap(inferred, hole, chunk_budget=budget)
        assert torch.allclose(out, truth, atol=1e-5)
    # Without the copy the hole gets other patches; the known cells never change.
    plain = torch.randn(1, 64, 20, 20)
    out = patch_swap(plain, hole)
    assert torch.equal(out * (1 - hole), plain * (1 - hole)) and not torch.allclose(out, plain)


def test_patch_swap_is_the_normalised_cross_correlation_and_the_transposed_convolution():
    torch.manual_seed(1)
    f = torch.randn(8, 10, 12).relu()
    hole = torch.zeros(10, 12, dtype=torch.bool)
    hole[4:7, 3:8] = True
    queries = F.max_pool2d(F.pad(hole[None, None].float(), (1, 1, 1, 1), mode="reflect"), 3, 1)[0, 0] > 0
    sources = ~queries
    q, chosen = best_patches(f, queries, f, sources, chunk_budget=37)
    # Brute force: every window as a vector, the cosine of each query with each source.
    windows = F.unfold(F.pad(f[None], (1, 1, 1, 1), mode="reflect"), 3)[0].T  # (cells, C*9)
    src = sources.flatten().nonzero().squeeze(1)
    cosine = F.normalize(windows[q], dim=1) @ F.normalize(windows[src], dim=1).T
    assert torch.equal(chosen, src[cosine.argmax(1)])
    # The paste: a transposed convolution of the one-hot choice map with the patches, over the overlap count.
    onehot = torch.zeros(1, len(src), 10, 12)
    onehot[0, (src[None] == chosen[:, None]).float().argmax(1), q // 12, q % 12] = 1
    filters = windows[src].view(-1, 8, 3, 3)
    pasted = F.conv_transpose2d(onehot, filters, padding=1)[0]
    count = F.conv_transpose2d(onehot, torch.ones(len(src), 1, 3, 3), padding=1)[0]
    expected = pasted / count.clamp_min(1)
    got = paste_average(f, q, chosen, f)
    assert torch.allclose(got[:, count[0] > 0], expected[:, count[0] > 0], atol=1e-5)
    out = patch_swap(f[None], hole[None, None].float())[0]
    assert torch.allclose(out[:, hole], got[:, hole])


def test_paper_networks_have_the_described_parts_and_shapes():
    method = IMT(IMT.resolve_config("paper", {"feature_scale": 0.05}), torch.device("cpu"))
    g1, g2 = method.nets["g1"], method.nets["g2"]
    assert isinstance(g1, Image2Feature) and isinstance(g2, Feature2Image)
    strided = [m for m in g1.down.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.stride[0] for c in strided] == [2, 2, 2]
    assert len(g1.blocks) == 9 and all(b.body[0][0].dilation[0] > 1 for b in g1.blocks)
    assert sum(isinstance(m, torch.nn.ConvTranspose2d) for m in g1.up.modules()) == 3
    assert len(g2.downs) == 7 and len(g2.ups) == 8
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in g2.modules())  # resize-convolution only
    with torch.no_grad():
        method.nets["g1"].eval(), method.nets["g2"].eval()
        x = torch.zeros(1, 3, 256, 256)
        assert g1(x, torch.ones(1, 1, 256, 256)).shape == (1, 3, 256, 256)
        features = method.vgg(x)
        assert features.shape == (1, 256, 64, 64)  # relu3_1 of a 256x256 image: F1 is 64x64x256
        assert g2(features).shape == (1, 3, 256, 256)
        assert g2(torch.zeros(1, 256, 9, 13)).shape == (1, 3, 36, 52)  # any feature-map size
        assert method.nets["d1"](x, x).shape[1] == 1 and method.nets["d2"](features, x).shape[1] == 1


def test_the_feature_mask_weighs_the_hole_and_more_its_boundary():
    fhole = torch.zeros(1, 1, 8, 8)
    fhole[..., 2:6, 2:6] = 1
    w = imt.boundary_weights(fhole, 2.0)
    assert w[..., 3:5, 3:5].eq(1).all() and w[..., 2, 2:6].eq(2).all() and w[..., 0:2, :].eq(0).all()
    assert w.sum() == 4 + 12 * 2


def test_scales_double_from_the_training_size_to_the_crop():
    assert imt.scale_sizes(256, 256, 256, 8) == [(256, 256)]
    assert imt.scale_sizes(512, 512, 256, 8) == [(256, 256), (512, 512)]
    assert imt.scale_sizes(1000, 600, 128, 8) == [(128, 80), (256, 152), (504, 304), (1000, 600)]


def test_both_losses_fall_when_overfitting_a_tiny_fixed_batch():
    torch.manual_seed(0)
    hole = torch.zeros(2, 1, 64, 64)
    hole[0, :, 16:48, 16:48] = 1
    hole[1, :, 8:40, 24:56] = 1
    history = overfit(tiny(), photo_batch(2, 64), hole, 60)
    assert set(history[0]) == {"perceptual1", "adv1", "d1", "perceptual2", "adv2", "d2", "l1_coarse"}
    assert_falls(history, ("perceptual1", "perceptual2"), 0.6)  # Image2Feature and Feature2Image


def test_mixture_feeds_feature2image_the_inferred_features(monkeypatch):
    seen = []
    real = imt.patch_swap
    monkeypatch.setattr(imt, "patch_swap", lambda f, h, **kw: seen.append(f.clone()) or real(f, h, **kw))
    torch.manual_seed(0)
    image, hole = photo_batch(2, 64), torch.zeros(2, 1, 64, 64)
    hole[..., 16:48, 16:48] = 1
    for mixture, from_step in ((0.0, 0), (1.0, 1)):
        method = tiny(mixture=mixture, mixture_from=from_step)
        ctx = StepContext(method.build_optimizers(), torch.device("cpu"), amp=False)
        seen.clear()
        method.train_step(image, hole, ctx, 0)
        method.train_step(image, hole, ctx, 1)
        truth = method.vgg(image * 2 - 1)
        assert torch.allclose(seen[0], truth, atol=1e-4)  # ground-truth features (before mixture_from)
        assert torch.allclose(seen[1], truth, atol=1e-4) == (mixture == 0)


@pytest.mark.parametrize("shape, hole", [((300, 200), (150, 120, 40, 30)), ((17, 41), (2, 30, 6, 9)),
                                         ((250, 230), (20, 30, 200, 150))])
def test_served_through_the_registry_at_any_size(tmp_path, shape, hole):
    export_tiny(tmp_path / "imt-test")
    engine = Registry(tmp_path, torch.device("cpu")).get("imt-test")
    assert set(engine.model.nets) == {"features", "g1", "g2"} and engine.size.native == 256
    fill_box_and_check(engine, shape, hole, params={"iterations": 2})


def test_multi_scale_runs_feature2image_once_per_scale_and_iteration(monkeypatch):
    method = tiny()
    for net in method.nets.values():
        net.eval()
    calls = []
    g2 = method.nets["g2"]
    method.nets["g2"] = lambda f: calls.append(tuple(f.shape[-2:])) or g2(f)
    image, hole = torch.rand(1, 3, 200, 136), torch.zeros(1, 1, 200, 136)
    hole[..., 50:120, 40:90] = 1
    with torch.no_grad():
        out = method.complete(image * (1 - hole), hole, iterations=2)
    assert out.shape == image.shape and torch.equal(out * (1 - hole), image * (1 - hole))
    # Training size 64: 200x136 is 56x40 -> 104x72 -> 200x136 (multiples of 8), features at a quarter.
    assert calls == [(14, 10), (14, 10), (26, 18), (26, 18), (50, 34), (50, 34)]


def test_style_transfer_command_renders_content_with_style_patches(tmp_path, capsys):
    export_tiny(tmp_path / "imt-style")
    Image.fromarray(photo_like(70, 90, seed=1)).save(tmp_path / "content.png")
    Image.fromarray(photo_like(64, 64, seed=2)).save(tmp_path / "style.png")
    out = tmp_path / "out.png"
    assert cli_main(["style-transfer", "--model", "imt-style", "--models-dir", str(tmp_path), "--content",
                     str(tmp_path / "content.png"), "--style", str(tmp_path / "style.png"), "--out", str(out)]) == 0
    assert Image.open(out).size == (90, 70)
    assert cli_main(["style-transfer", "--model", "patchmatch", "--models-dir", str(tmp_path), "--content",
                     str(tmp_path / "content.png"), "--style", str(tmp_path / "style.png"), "--out", str(out)]) == 2
    assert "not an Infer-Match-Translate" in capsys.readouterr().err


def test_tone_alignment_matches_the_fill_to_the_colour_around_the_hole():
    method = tiny()
    for net in method.nets.values():
        net.eval()
    method.nets["g2"] = lambda f: torch.full((f.shape[0], 3, f.shape[2] * 4, f.shape[3] * 4), -0.8)  # dark, flat
    image = torch.full((1, 3, 64, 64), 0.6)
    hole = torch.zeros(1, 1, 64, 64)
    hole[..., 20:44, 20:44] = 1
    with torch.no_grad():
        aligned = method.complete(image * (1 - hole), hole, align=True)
        plain = method.complete(image * (1 - hole), hole, align=False)
    assert torch.allclose(aligned, image, atol=1e-5)
    assert torch.allclose(plain[..., 30, 30], torch.tensor(0.1))


def test_feature_scale_is_measured_per_feature_network_and_kept(tmp_path):
    # One fixed scale measured on the HED network's activations left VGG19's ~57x smaller ones, and so the
    # perceptual terms, ~57x too weak: the scale is 1 / RMS of the network actually used.
    from backend.training.features import VGG19_FILE, vgg19

    torch.manual_seed(0)
    path = tmp_path / VGG19_FILE
    torch.save({k: v for k, v in vgg19(None).state_dict().items() if k.startswith("features.")}, path)
    image, hole = photo_batch(2, 64), torch.zeros(2, 1, 64, 64)
    hole[..., 16:40, 16:40] = 1
    scales = {}
    for name, extra in (("vgg16-hed", {}), ("vgg19", {"features_path": str(path)})):
        method = tiny(features=name, feature_scale="auto", **extra)
        with pytest.raises(ValueError, match="never measured"):
            method.vgg(image * 2 - 1)
        ctx = StepContext(method.build_optimizers(), torch.device("cpu"), amp=False)
        method.train_step(image, hole, ctx, 0)
        scales[name] = method.config["feature_scale"]
        with torch.no_grad():
            rms = method.vgg(image * 2 - 1).pow(2).mean().sqrt()
        assert abs(float(rms) - 1) < 1e-3, (name, float(rms))
    assert scales["vgg16-hed"] != scales["vgg19"]


def test_the_centre_hole_is_224_of_512_of_the_side_at_any_size():
    from backend.training.data import MaskSpec

    for recipe in ("paper", "small"):
        cfg = IMT.resolve_config(recipe, {})
        spec = MaskSpec({"centre": 1.0}, tuple(cfg["mask_ratio"]), cfg["mask_ratios"])
        for size, side in ((256, 112), (512, 224), (128, 56)):
            mask = spec.draw(np.random.default_rng(0), size)
            ys, xs = np.nonzero(mask)
            assert (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (side, side), (recipe, size)
