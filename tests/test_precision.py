"""Training precision: which one a run picks, fp16 loss scaling per step group, and real runs in each."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import photo_like

import tiny_method  # noqa: F401 - registers the 'tiny' method
from backend.cli import main
from backend.training import checkpoint
from backend.training.method import LossScalers, StepContext, resolve_precision

CUDA = torch.device("cuda")
CPU = torch.device("cpu")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: autocast and GradScaler on CUDA")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for i in range(4):
        cv2.imwrite(str(folder / f"p{i}.jpg"), photo_like(64, 80, seed=i))
    return folder


def train(photos: Path, out: Path, device: str, *extra: str) -> int:
    return main(["train", "--method", "tiny", "--data", str(photos), "--out", str(out), "--device", device,
                 "--set", "val_every=100", "--set", "save_every=100", *extra])


def saved(out: Path) -> tuple[dict, dict]:
    """(state, meta) of a run's newest checkpoint."""
    _, _, state, meta = checkpoint.load_training_state(out.with_name(out.name + ".train"))
    return state, meta


# --- which precision a run picks -----------------------------------------------------------------------------

@pytest.mark.parametrize("supported, expected", [(True, "bf16"), (False, "fp16")])
def test_auto_is_bf16_where_the_gpu_has_it_else_fp16(monkeypatch, supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: supported)
    assert resolve_precision(CUDA) == expected
    assert resolve_precision(CUDA, "auto", amp=True) == expected


def test_named_precision_and_the_older_amp_switch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    for name in ("bf16", "fp16", "fp32"):
        assert resolve_precision(CUDA, name) == name
    assert resolve_precision(CUDA, "auto", amp=False) == "fp32"  # an older config's amp=false
    assert resolve_precision(CUDA, "fp16", amp=False) == "fp16"  # a named precision wins over the older switch
    with pytest.raises(ValueError, match="precision"):
        resolve_precision(CUDA, "fp8")
    with pytest.raises(ValueError, match="precision"):
        resolve_precision(CPU, "half")


def test_cpus_follow_cpu_bf16_alone():
    assert resolve_precision(CPU, "fp16") == "fp32"
    assert resolve_precision(CPU, "bf16") == "fp32"
    assert resolve_precision(CPU, "fp32", cpu_bf16=True) == "bf16"
    lin = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    ctx = StepContext({}, CPU, precision="fp16")
    with ctx.autocast():
        assert lin(x).dtype == torch.float32
    assert ctx.scalers is None and ctx.scaler_state_dict() == {}
    with StepContext({}, CPU, cpu_bf16=True).autocast():
        assert lin(x).dtype == torch.bfloat16


# --- fp16 loss scaling, on CPU: GradScaler's bookkeeping is the same on every device ---------------------------

def two_optimisers(lr: float = 0.1):
    p, q, r = (torch.nn.Parameter(torch.ones(3)) for _ in range(3))
    opts = {n: torch.optim.SGD([t], lr=lr) for n, t in zip("abc", (p, q, r))}
    return (p, q, r), opts


def fp16_context(opts) -> StepContext:
    """A StepContext whose loss scaling runs on CPU tensors (on a GPU, fp16 gets LossScalers('cuda'))."""
    ctx = StepContext(opts, CPU)
    ctx.scalers = LossScalers("cpu")
    return ctx


def test_an_inf_loss_skips_its_own_step_only():
    (p, q, _), opts = two_optimisers()
    ctx = fp16_context(opts)
    scaled = []  # q's gradient as its backward pass produced it: the loss times the scale it got
    q.register_hook(lambda g: scaled.append(g[0].item()))
    ctx.step("a", (p * float("inf")).sum())
    ctx.step("b", q.sum())
    assert torch.equal(p.detach(), torch.ones(3)), "the overflowing step was taken"
    assert torch.allclose(q.detach(), torch.full((3,), 0.9)), "the finite step was skipped or left scaled"
    assert scaled == [2.0**16], "another loss's overflow changed this loss's scale"
    assert ctx.scaler_state_dict()["a"]["scale"] == 2.0**15  # the overflowing loss backed off from 2**16
    # The next iteration: a finite loss on the optimiser that overflowed steps again, at its reduced scale.
    ctx.step("a", p.sum())
    assert torch.allclose(p.detach(), torch.full((3,), 0.9))


def test_one_loss_on_several_optimisers_skips_only_the_one_with_inf():
    (p, q, _), opts = two_optimisers()
    ctx = fp16_context(opts)
    ctx.step(("a", "b"), (p * float("inf")).sum() + q.sum())
    assert torch.equal(p.detach(), torch.ones(3))
    assert torch.allclose(q.detach(), torch.full((3,), 0.9))
    state = ctx.scaler_state_dict()
    assert list(state) == ["a+b"], "one backward pass must be scaled by one scaler"
    assert state["a+b"]["scale"] == 2.0**15


def test_an_optimiser_stepped_by_two_losses_in_one_iteration():
    (p, q, r), opts = two_optimisers()
    ctx = fp16_context(opts)
    ctx.step(("b", "c"), (q + r * float("inf")).sum())  # "c" skips; its group's scale halves
    assert torch.equal(r.detach(), torch.ones(3))
    # "c" twice more, as a decoder shared by two stages: each loss is unscaled by the scale it was scaled with.
    ctx.step(("a", "c"), (p + r).sum())
    ctx.step(("b", "c"), (q + r).sum())
    for t, want in ((p, 0.9), (q, 0.8), (r, 0.8)):
        assert torch.allclose(t.detach(), torch.full((3,), want))


def test_scales_resume_exactly_and_older_states_load():
    (p, q, _), opts = two_optimisers()
    ctx = fp16_context(opts)
    ctx.step("a", (p * float("inf")).sum())
    ctx.step(("a", "b"), (p + q).sum())
    state = ctx.scaler_state_dict()
    assert set(state) == {"a", "a+b"} and state["a"]["scale"] == 2.0**15 and state["a+b"]["_growth_tracker"] == 1

    again = fp16_context(opts)
    again.load_scaler_state_dict(state)
    assert again.scaler_state_dict() == state, "a group not stepped since the resume lost its saved scale"
    again.step("a", p.sum())
    assert again.scalers.scalers["a"].get_scale() == 2.0**15
    assert again.scalers.scalers["a"].state_dict()["_growth_tracker"] == 1

    # An older state: one scaler shared by every step. Each group starts from its scale.
    older = fp16_context(opts)
    older.load_scaler_state_dict({}, shared={**state["a"], "scale": 64.0})
    older.step("b", q.sum())
    assert older.scalers.scalers["b"].get_scale() == 64.0
    # bf16 and fp32 have no scale to resume: a saved one is ignored.
    plain = StepContext(opts, CPU)
    plain.load_scaler_state_dict(state, shared=state["a"])
    assert plain.scaler_state_dict() == {}


# --- whole runs --------------------------------------------------------------------------------------------

def test_fp32_run_on_cpu_and_resume_of_an_older_state(photos, tmp_path):
    out = tmp_path / "cpu"
    assert train(photos, out, "cpu", "--steps", "2", "--set", "precision=fp16") == 0  # CPUs ignore precision
    state, meta = saved(out)
    assert state["scalers"] == {} and "scaler" not in state
    assert meta["config"]["precision"] == "fp16"

    # Make it look like a run saved before per-group scalers and the precision key.
    folder = out.with_name(out.name + ".train")
    stem = folder / json.loads((folder / "latest.json").read_text())["stem"]
    del state["scalers"]
    state["scaler"] = {}
    torch.save(state, stem.with_suffix(".state.pt"))
    del meta["config"]["precision"]
    stem.with_suffix(".json").write_text(json.dumps(meta))
    assert train(photos, out, "cpu", "--resume", "--steps", "4") == 0
    state, meta = saved(out)
    assert meta["step"] == 4 and state["scalers"] == {}


@needs_cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cuda_run_in_each_precision(photos, tmp_path, precision):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    out = tmp_path / precision
    assert train(photos, out, "cuda", "--steps", "6", "--set", f"precision={precision}") == 0
    assert torch.backends.cudnn.benchmark
    state, meta = saved(out)
    losses = [r["loss"]["l1"] for r in json.loads(state["log"]) if "loss" in r]
    assert len(losses) == 6 and all(np.isfinite(losses)), losses
    if precision == "fp16":
        assert set(state["scalers"]) == {"generator"} and state["scalers"]["generator"]["scale"] > 0
        assert train(photos, out, "cuda", "--resume", "--steps", "8") == 0
        assert saved(out)[1]["step"] == 8
    else:
        assert state["scalers"] == {}, "bf16 needs no loss scaling"


@needs_cuda
@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", torch.float32)])
def test_cuda_autocast_dtype(precision, dtype):
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    lin = torch.nn.Linear(8, 8).to(CUDA)
    ctx = StepContext({"lin": torch.optim.SGD(lin.parameters(), lr=0.1)}, CUDA, precision=precision)
    with ctx.autocast():
        y = lin(torch.randn(4, 8, device=CUDA))
    assert y.dtype == dtype
    assert (ctx.scalers is not None) == (precision == "fp16")
    ctx.step("lin", y.float().square().mean())
    assert all(torch.isfinite(p).all() for p in lin.parameters())
