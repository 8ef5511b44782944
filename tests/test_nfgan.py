"""Neural-features GAN: the paper's tables, learning, and serving any image and selection through the fixed size."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_falls, fill_box_and_check, overfit, photo_batch, photo_like
from torch import nn

from backend.engines.base import Engine, SizeRules
from backend.engines.region import fill_region, plan_crop
from backend.engines.registry import Registry
from backend.methods import get_method
from backend.methods.nfgan.method import crop, gan_g, local_windows
from backend.methods.nfgan.model import GLOBAL_D, LOCAL_D, Discriminator, Generator, SameConv, pooled_sizes
from backend.request import FillRequest, Output
from backend.training import checkpoint
from backend.training.masks import bucket_mask, generate_mask

NFGAN = get_method("nfgan")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def convs(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.Conv2d)]


def test_generator_follows_tables_1_and_2():
    g = Generator(64)
    assert [c.out_channels for c in convs(g)] == [32, 64, 128, 256, 64, 64, 32, 32, 3]
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs(g))
    # At 64x64 the bottleneck is exactly Table 1's: 256 x 4 x 4 = 4096 -> fc 1024 -> defc 4096.
    assert (g.fc[0].in_features, g.fc[0].out_features, g.defc[0].out_features) == (4096, 1024, 4096)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.modules()) == 8  # BN after every hidden conv
    # The paper's 24x24: ceil pooling 24 -> 12 -> 6 -> 3 -> 2 and back up to 24.
    assert pooled_sizes(24) == [24, 12, 6, 3, 2]
    g24 = Generator(24).eval()
    with torch.no_grad():
        out = g24(torch.rand(2, 3, 24, 24), torch.zeros(2, 1, 24, 24))
    assert out.shape == (2, 3, 24, 24) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="24x24"):
        g24(torch.rand(1, 3, 32, 32), torch.zeros(1, 1, 32, 32))


def test_discriminators_follow_tables_3_and_4_at_any_size():
    dg, dl = Discriminator(GLOBAL_D), Discriminator(LOCAL_D)
    assert [(c.kernel_size[0], c.stride[0], c.out_channels) for c in convs(dg)] == list(GLOBAL_D)
    assert [c.out_channels for c in convs(dg)] == [32, 32, 64, 128, 256, 128, 1]
    assert [c.out_channels for c in convs(dl)] == [64, 64, 128, 256, 1]
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in list(dg.modules()) + list(dl.modules()))
    assert dg(torch.rand(2, 3, 24, 24)).shape == (2, 1, 1, 1)
    assert dg(torch.rand(2, 3, 64, 64)).shape == (2, 1, 2, 2)
    assert dl(torch.rand(2, 3, 8, 8)).shape == (2, 1, 1, 1)
    for n in range(1, 10):  # "same" padding: stride 2 gives ceil(n / 2) for odd and even sizes alike
        assert SameConv(1, 1, 4, 2)(torch.rand(1, 1, n, n)).shape[-1] == -(-n // 2)


def test_the_paper_recipe_trains_on_a_centre_hole_of_8_in_24():
    cfg = NFGAN.resolve_config("paper", {})
    assert cfg["size"] == 24 and cfg["mask_kinds"] == {"centre": 1.0}
    assert (cfg["w_global"], cfg["w_local"], cfg["w_feature"]) == (200.0, 200.0, 0.05)
    mask = generate_mask(np.random.default_rng(0), 24, 24, "centre", tuple(cfg["mask_ratio"]))
    assert np.array_equal(np.argwhere(mask > 0).min(0), [8, 8]) and np.array_equal(np.argwhere(mask > 0).max(0), [15, 15])
    assert np.count_nonzero(bucket_mask("centre 1/9", 3, 24, 24)) == 64
    assert NFGAN.resolve_config("large", {})["size"] == 64


def test_local_windows_sit_on_the_holes_own_box_and_inside_the_image():
    hole = torch.zeros(4, 1, 24, 24)
    hole[0, :, 0:2, 0:2] = 1  # corner
    hole[1, :, 20:24, 10:14] = 1  # bottom edge
    hole[2, :, 8:16, 8:16] = 1  # the paper's hole: the window is exactly it
    hole[3, :, 2:4, 3:5] = 1
    hole[3, :, 10:12, 13:15] = 1  # two pieces: the window is centred on their common box
    assert local_windows(hole, 8) == [(0, 0), (16, 8), (8, 8), (3, 5)]
    assert local_windows(torch.zeros(1, 1, 24, 24), 8) == [(8, 8)]  # no hole: the centre


def test_every_loss_term_gets_a_real_share_of_the_generators_gradient():
    torch.manual_seed(0)
    method = NFGAN(NFGAN.resolve_config("paper", {}), torch.device("cpu"))
    G, cfg = method.nets["generator"], method.config
    hole = torch.zeros(16, 1, 24, 24)
    hole[..., 8:16, 8:16] = 1
    image = photo_batch(16, 24)
    out = G(image, hole)
    fake = out * hole + image * (1 - hole)
    corners = local_windows(hole, 8)
    terms = {k: cfg[f"w_{k}"] * v for k, v in method.generator_terms(image, out, fake, corners).items()}
    norm = {k: torch.cat([g.flatten() for g in torch.autograd.grad(v, list(G.parameters()), retain_graph=True)]).norm()
            for k, v in terms.items()}
    # At the start the discriminators know nothing yet, so their terms start small (and grow as they learn:
    # ~1 % and ~40 % of L2's after 25 steps on photos); per-image sums on 0-255 pixels gave 1e-9 and 1e-8.
    share = {k: float(norm[k] / norm["l2"]) for k in norm}
    assert 1e-5 < share["global"] < 1 and 1e-4 < share["local"] < 1 and 0.05 < share["feature"] < 10, share


def test_loss_falls_when_overfitting_a_tiny_fixed_batch():
    torch.manual_seed(0)
    method = NFGAN(NFGAN.resolve_config("paper", {"batch": 4}), torch.device("cpu"))
    hole = torch.zeros(4, 1, 24, 24)
    hole[..., 8:16, 8:16] = 1
    history = overfit(method, photo_batch(4, 24), hole, 40)
    assert set(history[0]) == {"g", "l2", "adv_global", "adv_local", "neural", "d_global", "d_local"}
    assert_falls(history, ("l2", "neural"), 0.5)  # g is mostly the 200 x GAN terms, which need not fall


def test_the_warmup_recipe_ramps_the_gan_terms_in_and_keeps_the_rest_of_the_paper():
    paper = NFGAN(NFGAN.resolve_config("paper", {}), torch.device("cpu"))
    warm = NFGAN(NFGAN.resolve_config("warmup", {}), torch.device("cpu"))
    full = {"l2": 1.0, "global": 200.0, "local": 200.0, "feature": 0.05}
    assert paper.loss_weights(0) == full
    warmup = warm.config["gan_warmup"]
    assert warm.loss_weights(0) == {**full, "global": 0.0, "local": 0.0}
    assert warm.loss_weights(warmup // 2) == pytest.approx({**full, "global": 100.0, "local": 100.0})
    assert warm.loss_weights(warmup) == warm.loss_weights(10 * warmup) == full
    same = ("size", "mask_kinds", "mask_ratio", "batch", "lr", "betas", "w_l2", "w_global", "w_local", "w_feature")
    assert {k: warm.config[k] for k in same} == {k: paper.config[k] for k in same}


def test_with_the_gan_terms_ramped_out_the_generator_steps_on_reconstruction_alone():
    """At step 0 of the warm-up a step moves G exactly as the L2 and feature terms alone would."""
    hole = torch.zeros(4, 1, 24, 24)
    hole[..., 8:16, 8:16] = 1
    image = photo_batch(4, 24)
    moved = []
    for recipe in ("warmup", "paper"):
        torch.manual_seed(0)
        method = NFGAN(NFGAN.resolve_config(recipe, {"batch": 4, "ema": 0.0}), torch.device("cpu"))
        G = method.nets["generator"]
        out = G(image, hole)
        fake = out * hole + image * (1 - hole)
        terms = method.generator_terms(image, out, fake, local_windows(hole, 8))
        loss = sum(w * terms[k] for k, w in method.loss_weights(0).items())
        moved.append(torch.autograd.grad(loss, G.to_rgb.weight)[0])
    torch.manual_seed(0)
    method = NFGAN(NFGAN.resolve_config("paper", {"batch": 4}), torch.device("cpu"))
    G, cfg = method.nets["generator"], method.config
    out = G(image, hole)
    terms = method.generator_terms(image, out, out * hole + image * (1 - hole), local_windows(hole, 8))
    recon = torch.autograd.grad(cfg["w_l2"] * terms["l2"] + cfg["w_feature"] * terms["feature"], G.to_rgb.weight)[0]
    assert torch.allclose(moved[0], recon, rtol=1e-4, atol=1e-7)
    assert not torch.allclose(moved[1], recon, rtol=1e-4, atol=1e-7)  # the paper's weights: the GAN terms pull too


class FixedProbe(Engine):
    """Records what the region pipeline hands a fixed-size engine."""

    id = "probe"
    size = SizeRules(native=24, fixed=True)

    def __init__(self):
        super().__init__("cpu")
        self.seen = []

    def inpaint(self, image, hole, options, progress):
        self.seen.append(tuple(image.shape[-2:]))
        return image


def test_fixed_size_engines_get_square_context_scaled_to_their_size():
    probe = FixedProbe()
    plan = plan_crop((100, 40, 140, 60), probe, (400, 300))  # a wide 40x20 box: grown to a 40x40 square
    assert (plan.box[2] - plan.box[0], plan.box[3] - plan.box[1]) == (40, 40) and plan.work == (24, 24) and plan.pad == (0, 0)
    plan = plan_crop((0, 0, 30, 10), probe, (30, 10))  # no room for a square: stretched, still 24x24
    assert plan.box == (0, 0, 30, 10) and plan.work == (24, 24)
    image = photo_like(90, 130, seed=1)
    mask = np.zeros((90, 130), np.float32)
    mask[5:9, 100:125] = 1
    fill_region(probe, FillRequest(image, mask, output=Output.IMAGE))
    assert probe.seen == [(24, 24)]
    with pytest.raises(ValueError, match="native"):
        SizeRules(fixed=True)


@pytest.mark.parametrize("shape, hole", [((300, 200), (150, 180, 20, 12)), ((17, 41), (2, 30, 6, 9)), ((64, 64), (0, 0, 64, 3)),
                                         ((500, 700), (40, 60, 300, 200))])
def test_served_through_the_registry_for_any_image_and_selection(tmp_path, shape, hole):
    torch.manual_seed(0)
    config = NFGAN.resolve_config("paper", {})
    method = NFGAN(config, torch.device("cpu"))
    checkpoint.export(tmp_path / "nfgan-test", checkpoint.network_tensors(method.nets, NFGAN.inference_networks),
                      {"method": "nfgan", "config": {**config, "method": "nfgan"}, "step": 0})
    registry = Registry(tmp_path, torch.device("cpu"))
    engine = registry.get("nfgan-test")
    assert engine.size.fixed and engine.size.native == 24 and set(engine.model.nets) == {"generator"}
    fill_box_and_check(engine, shape, hole)


def test_vgg19_file_serves_as_the_feature_network_and_a_wrong_name_is_refused(tmp_path):
    from backend.training.features import FeatureWeightsMissing, vgg19

    torch.manual_seed(0)
    path = tmp_path / "vgg19.pth"
    torch.save({k: v for k, v in vgg19(None).state_dict().items() if k.startswith("features.")}, path)
    method = NFGAN(NFGAN.resolve_config("paper", {"features": "vgg19", "features_path": str(path)}), torch.device("cpu"))
    feats = method.neural_features(torch.rand(2, 3, 24, 24))
    assert feats.shape == (2, 256, 6, 6)  # conv3_1 at a quarter of the size
    assert len(method.features().features) == 11  # nothing past conv3_1 is built
    missing = NFGAN(NFGAN.resolve_config("paper", {"features": "vgg19", "features_path": str(tmp_path / "none.pth")}),
                    torch.device("cpu"))
    with pytest.raises(FeatureWeightsMissing, match="vgg19"):
        missing.features()
    with pytest.raises(ValueError, match="vgg16-hed or vgg19"):
        NFGAN(NFGAN.resolve_config("paper", {"features": "alexnet"}), torch.device("cpu")).features()
