"""CISI-net: the networks' shapes, the style code, the hole-weighted and hole-patch losses, learning, serving."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_falls, fill_box_and_check, overfit, photo_batch

from backend.engines.registry import Registry
from backend.methods import get_method
from backend.methods.cisi import losses
from backend.methods.cisi.model import Decoder, MultiScaleDiscriminator, ResBlock
from backend.training import checkpoint
from backend.training.method import StepContext

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CISI = get_method("cisi")
# A few channels per layer: the paper's structure at a size a test can train.
TINY = {"dim": 8, "mlp_dim": 16, "d_dim": 8, "size": 64, "batch": 2, "dilations": [1, 2, 4, 8]}


def tiny(recipe: str = "small", **overrides) -> "CISI":
    return CISI(CISI.resolve_config(recipe, {**TINY, **overrides}), torch.device("cpu"))


def test_paper_networks_have_the_described_parts_and_shapes():
    method = CISI(CISI.resolve_config("paper", {}), torch.device("cpu"))
    n = method.nets
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    hole = torch.zeros(1, 1, 256, 256)
    hole[..., 64:192, 64:192] = 1
    content = n["sce"](x)
    inferred = n["ice"](torch.cat([x * (1 - hole), hole], 1))
    style = n["style"](x)
    assert content.shape == inferred.shape == (1, 256, 64, 64)  # a spatial content map
    assert style.shape == (1, 8)  # the 8-dim style code
    out = n["decoder"](inferred, style)
    assert out.shape == (1, 3, 256, 256) and out.abs().max() <= 1
    assert [s.shape[-1] for s in n["discriminator"](x)] == [16, 8, 4]  # three scales of patch scores
    # Instance norm in every content-encoder layer, none in the style encoder; AdaIN in the decoder's blocks.
    norms = lambda net: [type(m).__name__ for m in net.modules() if "Norm" in type(m).__name__]  # noqa: E731
    assert set(norms(n["sce"])) == set(norms(n["ice"])) == {"InstanceNorm2d"} and norms(n["style"]) == []
    assert all(b.a.adaptive and b.b.adaptive for b in n["decoder"].blocks)
    # The ICE: dilated convolutions in every residual block and one extra block without stride at the end.
    ice_blocks = [m for m in n["ice"].model if isinstance(m, ResBlock)]
    assert [b.a.conv.dilation[0] for b in ice_blocks] == [2, 4, 8, 16]
    assert [b.a.conv.dilation[0] for b in n["sce"].model if isinstance(b, ResBlock)] == [1, 1, 1, 1]
    assert len(n["ice"].model) == len(n["sce"].model) + 1 and n["ice"].model[-1].conv.stride == (1, 1)
    assert n["ice"].model[0].conv.in_channels == 4  # the corrupted image and its hole
    # The MLP makes a scale and a shift per channel for two AdaIN layers in each of the four blocks.
    assert n["decoder"].mlp[-1].out_features == 4 * 2 * 2 * 256


def test_the_style_code_changes_the_output_only_when_content_and_style_are_separated():
    torch.manual_seed(0)
    content = torch.randn(2, 32, 16, 16)
    decoder = Decoder(32, 8, 16, blocks=2, upsample=2)
    a, b = torch.randn(1, 8), torch.randn(1, 8)
    with torch.no_grad():
        same = decoder(content, torch.cat([a, a]))
        swapped = decoder(content, torch.cat([a, b]))
    assert torch.equal(same[0], swapped[0])  # each image is rendered with its own code only
    assert (same[1] - swapped[1]).abs().mean() > 1e-2  # another 8-dim code renders the same content differently
    plain = Decoder(32, 8, 16, blocks=2, upsample=2, adaptive=False)  # the ablation without separation
    with torch.no_grad():
        assert torch.equal(plain(content, torch.cat([a, a])), plain(content, torch.cat([a, b])))

    # Through the served method: the style code of another photo changes the fill.
    method = tiny()
    image, hole = photo_batch(2, 64), torch.zeros(2, 1, 64, 64)
    hole[..., 16:48, 16:48] = 1
    with torch.no_grad():
        x = (image * 2 - 1) * (1 - hole)
        content, style = method.encode(x, hole)
        own = method.nets["decoder"](content, style)
        other = method.nets["decoder"](content, style.flip(0))
    assert style.shape == (2, 8) and (own - other).abs().mean() > 1e-3


def test_feature_masks_follow_the_hole_through_the_vgg_pools():
    hole = torch.zeros(1, 1, 64, 64)
    hole[..., 16:48, 16:40] = 1  # two pool3 cells from every image border
    masks = losses.feature_masks(hole, 0.5)
    assert [m.shape[-1] for m in masks] == [32, 16, 8]  # pool1, pool2, pool3
    for m, scale in zip(masks, (2, 4, 8)):
        expected = torch.zeros_like(m)
        expected[..., 16 // scale:48 // scale, 16 // scale:40 // scale] = 1
        assert torch.equal(m, expected)  # a hole on the pooling grid keeps its exact shape at threshold 0.5
    loose = losses.feature_masks(hole, 0.0)
    assert all(l.sum() > m.sum() for l, m in zip(loose, masks))  # any share of hole: the boundary joins
    edge = torch.zeros(1, 1, 64, 64)
    edge[..., :, :16] = 1  # a hole on the image border stays in the mask (the filter ignores the frame)
    assert losses.feature_masks(edge, 0.5)[2][..., :, :2].all()


def test_adversarial_loss_counts_only_patches_that_overlap_the_hole():
    torch.manual_seed(0)
    hole = torch.zeros(1, 1, 128, 128)
    hole[..., 8:24, 8:24] = 1  # top left
    masks = losses.patch_masks(hole, 3, 4)
    shares = [float(m.mean()) for m in masks]
    assert 0 < shares[0] < shares[1] < shares[2]  # a coarser scale's patches cover more of the image
    D = MultiScaleDiscriminator(scales=1, dim=8, layers=4).eval()  # the full-size scale: 46 px patches
    fake = torch.rand(1, 3, 128, 128, requires_grad=True)
    loss = losses.lsgan_g(D(fake), masks[:1])
    (grad,) = torch.autograd.grad(loss, fake)
    assert grad[..., 8:24, 8:24].abs().sum() > 0  # the hole's pixels reach the loss...
    assert grad[..., 80:, 80:].abs().sum() == 0  # ...patches far from it do not
    changed = fake.detach().clone()
    changed[..., 80:, 80:] = 0
    assert torch.equal(losses.lsgan_g(D(changed), masks[:1]), loss.detach())
    assert all(m.all() for m in losses.patch_masks(torch.ones_like(hole), 3, 4))


def test_weighted_losses_weigh_the_hole_five_times_the_known_region():
    target = torch.zeros(1, 3, 8, 8)
    hole = torch.zeros(1, 1, 8, 8)
    hole[..., :4, :] = 1
    in_hole, in_known = target.clone(), target.clone()
    in_hole[..., 0, 0] = 1
    in_known[..., 7, 7] = 1
    w = losses.weights(hole, 5.0, 1.0)
    assert losses.weighted_l1(in_hole, target, w) == 5 * losses.weighted_l1(in_known, target, w)
    assert losses.weighted_perceptual([in_hole], [target], [hole], 5.0, 1.0) == 5 * losses.weighted_perceptual(
        [in_known], [target], [hole], 5.0, 1.0)


class RecordingContext(StepContext):
    """Records which optimisers each update steps and whether the self-content encoder moved."""

    def __init__(self, method, **kw):
        super().__init__(method.build_optimizers(), torch.device("cpu"), amp=False, **kw)
        self.method, self.updates = method, []

    def step(self, names, loss):
        before = [p.detach().clone() for p in self.method.nets["sce"].parameters()]
        super().step(names, loss)
        moved = any(not torch.equal(a, p) for a, p in zip(before, self.method.nets["sce"].parameters()))
        self.updates.append((names, moved))


def test_updates_alternate_self_content_encoder_then_inferred_content_encoder():
    torch.manual_seed(0)
    method = tiny()
    ctx = RecordingContext(method)
    hole = torch.zeros(2, 1, 64, 64)
    hole[0, :, 16:48, 16:48] = 1
    hole[1, :, 0:20, 30:60] = 1
    logs = method.train_step(photo_batch(2, 64), hole, ctx, 0)
    assert ctx.updates == [(("sce", "style", "decoder"), True), (("ice", "style", "decoder"), False), ("discriminator", False)]
    assert logs["content"] > 0 and logs["style"] > 0

    # The ablations: without latent guidance no content-code loss; without separation neither the
    # self-content encoder nor the style encoder takes part.
    ctx2 = RecordingContext(method := tiny("small-exp2"))
    assert method.train_step(photo_batch(2, 64), hole, ctx2, 0)["content"] == 0
    ctx1 = RecordingContext(method := tiny("small-exp1"))
    logs = method.train_step(photo_batch(2, 64), hole, ctx1, 0)
    assert ctx1.updates == [(("ice", "decoder"), False), ("discriminator", False)]
    assert logs["content"] == logs["style"] == 0 and "self_l1" not in logs
    assert not method.nets["decoder"].adaptive
    with pytest.raises(ValueError, match="separate"):
        tiny("small", separate=False)
    assert CISI.resolve_config("small-exp3", {})["hole_weight"] == 1 and CISI.resolve_config("small", {})["hole_weight"] == 5


def test_loss_falls_when_overfitting_a_tiny_fixed_batch():
    torch.manual_seed(0)
    method = tiny()
    image = photo_batch(2, 64)
    hole = torch.zeros(2, 1, 64, 64)
    hole[0, :, 16:48, 16:48] = 1
    hole[1, :, 8:40, 24:56] = 1
    history = overfit(method, image, hole, 40)
    assert set(history[0]) == {"self_l1", "self_perceptual", "g", "l1", "perceptual", "adv", "content", "style", "d"}
    assert_falls(history, ("self_l1", "l1", "perceptual"), 0.6)
    with torch.no_grad():
        for net in method.nets.values():
            net.eval()
        out = method.inpaint(image * (1 - hole), hole)
    assert (out - image).abs().mul(hole).sum() / hole.sum() / 3 < 0.15  # the fill resembles the photo it learned


def test_style_codes_stay_bounded_while_training():
    # The style encoder has no normalisation: a loss that chases a detached copy of its own output
    # made its codes grow tenfold within 30 steps on photos, and on without end.
    torch.manual_seed(0)
    method = tiny()
    ctx = StepContext(method.build_optimizers(), torch.device("cpu"), amp=False)
    gen = np.random.default_rng(0)
    # Photos of different colour and contrast: what the style code is there to tell apart.
    tint = torch.from_numpy(gen.uniform(0, 1, (4, 3, 1, 1))).float()
    contrast = torch.tensor([0.2, 0.5, 1.0, 1.5]).view(4, 1, 1, 1)
    image = ((photo_batch(4, 64) - 0.5) * contrast + tint).clamp(0, 1)
    sizes = []
    for step in range(60):
        hole = torch.zeros(4, 1, 64, 64)
        for i, (y, x) in enumerate(gen.integers(0, 32, (4, 2))):
            hole[i, :, y:y + 32, x:x + 32] = 1
        method.train_step(image, hole, ctx, step)
        with torch.no_grad():
            sizes.append(float(method.nets["style"](image * 2 - 1).abs().mean()))
    # The codes grow from their small initial size to about unit size and settle there.
    assert max(sizes) < 2.0 and sizes[-1] < 1.2 * sizes[-11], sizes


@pytest.mark.parametrize("shape, hole", [((300, 200), (150, 120, 40, 30)), ((17, 41), (2, 30, 6, 9)), ((130, 97), (0, 0, 130, 5))])
def test_served_through_the_registry_at_any_size(tmp_path, shape, hole):
    torch.manual_seed(0)
    config = CISI.resolve_config("small", TINY)
    method = CISI(config, torch.device("cpu"))
    checkpoint.export(tmp_path / "cisi-test", checkpoint.network_tensors(method.nets, CISI.inference_networks),
                      {"method": "cisi", "config": {**config, "method": "cisi"}, "step": 0})
    engine = Registry(tmp_path, torch.device("cpu")).get("cisi-test")
    assert set(engine.model.nets) == {"ice", "style", "decoder"} and not engine.size.fixed
    fill_box_and_check(engine, shape, hole)
    x = torch.rand(1, 3, 30, 22)
    m = torch.zeros(1, 1, 30, 22)
    assert method.inpaint(x, m).shape == (1, 3, 30, 22)  # sizes off the multiple of 4 are padded and cropped
    paper = CISI(CISI.resolve_config("small", {"dim": 8, "mlp_dim": 16}), torch.device("cpu"))
    assert paper.inpaint(x, m).shape == (1, 3, 30, 22)  # also where the dilation of 16 needs a larger map



def test_inferred_content_codes_can_meet_the_signed_self_content_codes():
    # The SCE's codes end in a residual sum: signed and unnormalised. An ICE ending in a ReLU could never
    # go under the negative part of its guide (the floor below), nor one ending in instance norm match
    # its per-channel statistics; overfit on a fixed guide, the latent content loss must pass the floor.
    torch.manual_seed(0)
    method = tiny()
    image = photo_batch(2, 64) * 2 - 1
    hole = torch.zeros(2, 1, 64, 64)
    hole[0, :, 16:48, 16:48] = 1
    hole[1, :, 8:40, 24:56] = 1
    with torch.no_grad():
        guide = method.nets["sce"](image)
    floor = float(F.relu(-guide).mean())  # the least L1 distance any code >= 0 can have to the guide
    assert (guide < 0).float().mean() > 0.2
    opt = torch.optim.Adam(method.nets["ice"].parameters(), lr=1e-3)
    for _ in range(150):
        code, _ = method.encode(image * (1 - hole), hole)
        loss = F.l1_loss(code, guide)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (code < 0).float().mean() > 0.2
    assert loss.item() < 0.8 * floor, (loss.item(), floor)


def test_perceptual_loss_reads_torchvision_imagenet_vgg16_as_the_paper(tmp_path):
    from test_features import torchvision_vgg19_state

    from backend.training import features

    path = tmp_path / features.VGG16_FILE
    torch.save(torchvision_vgg19_state(plan=features._VGG16), path)
    method = tiny(features="vgg16", features_path=str(path))
    x = photo_batch(1, 64) * 2 - 1
    raw = method.features()((x + 1) / 2)
    assert [f.shape[1] for f in raw] == [64, 128, 256]
    # On the HED network's (Caffe) scale, so the recipe's perceptual weight keeps its meaning.
    assert torch.allclose(method.vgg(x)[0], raw[0] * features.IMAGENET_TO_CAFFE)
    hole = torch.zeros(1, 1, 64, 64)
    hole[..., 16:48, 16:48] = 1
    assert np.isfinite(overfit(method, x.add(1).div(2).expand(2, -1, -1, -1), hole.expand(2, -1, -1, -1), 1)[0]["perceptual"])
    with pytest.raises(ValueError, match="vgg16 or vgg16-hed"):
        tiny(features="vgg19").features()


def test_checkpoints_of_the_older_rectified_head_still_load_as_trained():
    config = CISI.resolve_config("small", TINY)
    del config["ice_head"]  # as older checkpoints' configs
    old = CISI(config, torch.device("cpu")).nets["ice"].model[-1]
    assert isinstance(old.act, torch.nn.ReLU) and isinstance(old.norm, torch.nn.InstanceNorm2d)
    new = tiny().nets["ice"].model[-1]
    assert isinstance(new.act, torch.nn.Identity) and isinstance(new.norm, torch.nn.Identity)
