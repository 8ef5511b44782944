"""Memory format and precision (backend/compute.py): the fast paths give the fp32 answer, and bf16 is the CPU
default only where the hardware has it."""
from __future__ import annotations

import pytest
import torch

from backend import compute
from backend.methods import get_method
from backend.training.method import StepContext, resolve_precision
from backend.training.trainer import DEFAULTS

CPU = torch.device("cpu")

# Each method at a size a test can run, in its CPU recipe. Semantic's latent search is left out: its networks
# are checked directly below (the search is many forward passes of the same networks).
SMALL = {
    "cisi": ("small", {"dim": 8, "mlp_dim": 16, "d_dim": 8, "dilations": [1, 2, 4, 8]}),
    "imt": ("small", {"g1_dim": 8, "g1_blocks": 2, "g2_widths": [16] * 7, "g2_tail": [8, 8], "d_dim": 8,
                      "feature_scale": 0.05}),
    "isnet": ("short", {}),
    "nfgan": ("paper", {}),
}

# bfloat16 keeps 8 significant bits: each rounding is off by up to 2^-9 (0.2 %) of its value. Through a dozen
# layers of [0, 1]-scaled activations the measured output error is at most 0.012 (CISI-net) and on average
# 0.002; the bounds give 3-4x room and still catch a wrong cast (e.g. a tanh saturating, an fp16 overflow,
# a channel order mixed up), which errs by tenths.
BF16_MAX, BF16_MEAN = 0.04, 0.008


def simulate_cpu(monkeypatch, bf16: bool, amx: bool = False) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)


def test_bf16_is_the_default_only_on_cpus_that_have_it(monkeypatch):
    simulate_cpu(monkeypatch, bf16=False)  # an AVX2-only CPU: bf16 would be emulated, tens of times slower
    assert not compute.native_cpu_bf16()
    assert resolve_precision(CPU, cpu_bf16=DEFAULTS["cpu_bf16"]) == "fp32"
    assert StepContext({}, CPU, cpu_bf16="auto").precision == "fp32"
    assert resolve_precision(CPU, cpu_bf16=True) == "bf16"  # asked for explicitly, it is used anyway
    for native in ({"bf16": True}, {"bf16": False, "amx": True}):
        simulate_cpu(monkeypatch, **native)
        assert compute.native_cpu_bf16()
        assert resolve_precision(CPU, cpu_bf16=DEFAULTS["cpu_bf16"]) == "bf16"
        assert resolve_precision(CPU, cpu_bf16=False) == "fp32"  # --set cpu_bf16=false
        assert resolve_precision(CPU, cpu_bf16="off") == "fp32"


def test_detection_falls_back_on_a_torch_without_the_probes(monkeypatch):
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    assert not compute.native_cpu_bf16()
    assert resolve_precision(CPU, cpu_bf16="auto") == "fp32"


def test_serving_precision_follows_the_flag_and_the_hardware(monkeypatch):
    monkeypatch.setattr(compute, "_serving_cpu_bf16", "auto")
    simulate_cpu(monkeypatch, bf16=False)
    assert compute.serving_precision(CPU) == "fp32"
    simulate_cpu(monkeypatch, bf16=True)
    assert compute.serving_precision(CPU) == "bf16"
    compute.set_serving_cpu_bf16("off")
    assert compute.serving_precision(CPU) == "fp32"
    assert compute.serving_precision(torch.device("cuda")) == "fp32"
    with pytest.raises(ValueError, match="auto, on or off"):
        compute.set_serving_cpu_bf16("maybe")


def test_channels_last_where_the_kernels_want_it(monkeypatch):
    simulate_cpu(monkeypatch, bf16=False)  # AVX2 only: fp32 NCHW is as fast or faster there
    assert compute.memory_format(CPU) is torch.contiguous_format
    assert compute.memory_format(CPU, True) is torch.channels_last
    simulate_cpu(monkeypatch, bf16=False, amx=True)
    assert compute.memory_format(CPU) is torch.channels_last
    assert compute.memory_format(CPU, False) is torch.contiguous_format
    assert compute.memory_format(torch.device("cuda")) is torch.channels_last
    assert compute.memory_format(torch.device("mps")) is torch.contiguous_format
    net = compute.place_network(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Linear(2, 2)), CPU)
    assert net[0].weight.is_contiguous(memory_format=torch.channels_last)
    batch = compute.place_batch(torch.rand(2, 3, 8, 8), CPU)
    assert batch.is_contiguous(memory_format=torch.channels_last) and not batch.is_contiguous()
    assert compute.place_batch(torch.rand(2, 3), CPU).shape == (2, 3)


def first_conv_dtypes(nets: dict[str, torch.nn.Module]) -> list[torch.dtype]:
    """Records the output dtype of each network's first convolution: proof of what precision really ran."""
    seen: list[torch.dtype] = []
    for net in nets.values():
        conv = next((m for m in net.modules() if isinstance(m, torch.nn.Conv2d)), None)
        if conv is not None:
            conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def fill(method_id: str, channels_last: bool, precision: str):
    cls = get_method(method_id)
    recipe, overrides = SMALL[method_id]
    config = cls.resolve_config(recipe, {**overrides, "channels_last": channels_last})
    size = int(config["size"]) if cls.fixed_size else 64
    torch.manual_seed(0)  # the same weights in every variant
    method = cls(config, CPU)
    for net in method.nets.values():
        net.eval()
    dtypes = first_conv_dtypes(method.nets)
    g = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, size, size, generator=g)
    hole = torch.zeros(2, 1, size, size)
    hole[..., size // 4:size // 2, size // 4:3 * size // 4] = 1
    image, hole = compute.place_batch(image, CPU, channels_last), compute.place_batch(hole, CPU, channels_last)
    with compute.autocast(CPU, precision), torch.no_grad():
        out = method.inpaint(image * (1 - hole), hole, torch.Generator().manual_seed(1)).float()
    return out, dtypes, method


@pytest.mark.parametrize("method_id", sorted(SMALL))
def test_channels_last_and_bf16_fill_as_fp32_does(method_id):
    reference, dtypes, _ = fill(method_id, False, "fp32")
    assert dtypes and set(dtypes) == {torch.float32}
    fast, _, method = fill(method_id, True, "fp32")
    assert any(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for net in method.nets.values() for p in net.parameters() if p.dim() == 4)
    torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-4)  # the same sums in another order
    half, dtypes, _ = fill(method_id, True, "bf16")
    assert torch.bfloat16 in dtypes, "autocast did not reach the convolutions"
    err = (half - reference).abs()
    assert err.max() < BF16_MAX and err.mean() < BF16_MEAN, (float(err.max()), float(err.mean()))


def test_semantic_networks_in_bf16_channels_last_match_fp32():
    cls = get_method("semantic")
    outs = {}
    for name, fmt, precision in (("fp32", False, "fp32"), ("bf16", True, "bf16")):
        torch.manual_seed(0)
        method = cls(cls.resolve_config("small", {"channels_last": fmt}), CPU)
        G, D = (method.nets[k].eval() for k in ("generator", "discriminator"))
        z = torch.rand(2, G.z_dim, generator=torch.Generator().manual_seed(0)) * 2 - 1
        with compute.autocast(CPU, precision), torch.no_grad():
            image = G(z)
            assert image.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
            outs[name] = (image.float(), D(compute.place_batch(image, CPU, fmt)).float())
    for ref, half in zip(outs["fp32"], outs["bf16"]):
        err = (half - ref).abs()
        # The discriminator's logit is unbounded: its error is judged relative to its spread.
        scale = max(1.0, float(ref.abs().max()))
        assert err.max() < BF16_MAX * scale and err.mean() < BF16_MEAN * scale


def test_a_bf16_channels_last_step_keeps_gradients_finite():
    """IMT's 1x1 innermost block overflowed in fp16: in bf16 (fp32's range) a training step stays finite."""
    cls = get_method("imt")
    recipe, overrides = SMALL["imt"]
    method = cls(cls.resolve_config(recipe, {**overrides, "size": 64, "batch": 2}), CPU)
    ctx = StepContext(method.build_optimizers(), CPU, cpu_bf16=True)
    g = torch.Generator().manual_seed(0)
    image = compute.place_batch(torch.rand(2, 3, 64, 64, generator=g), CPU)
    hole = torch.zeros(2, 1, 64, 64)
    hole[..., 16:48, 16:48] = 1
    before = {k: p.detach().clone() for k, p in method.nets["g2"].named_parameters()}
    losses = method.train_step(image, compute.place_batch(hole, CPU), ctx, 0)
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values()), losses
    after = dict(method.nets["g2"].named_parameters())
    assert all(torch.isfinite(p).all() for p in after.values())
    assert any(not torch.equal(before[k], p) for k, p in after.items()), "the step changed nothing"
