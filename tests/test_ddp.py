"""Every learned method under torchrun: two CPU processes (gloo) train a few steps of its smallest recipe.

Checked: the run ends cleanly, both ranks hold the same weights, only rank 0 validates and writes
checkpoints, the export serves the EMA shadows, and a resumed run continues from them.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

import cv2
import pytest
import torch
from conftest import ROOT, photo_like
from safetensors.torch import load_file

from backend.methods import get_method

# The smallest settings each method's recipes allow, so a run takes seconds on two CPU cores.
RUNS = {
    "isnet": ["--recipe", "short", "--size", "32"],
    "cisi": ["--recipe", "small", "--size", "64", "--set", "dim=8", "--set", "mlp_dim=16", "--set", "d_dim=8",
             "--set", "dilations=[1,2,4,8]"],
    "imt": ["--recipe", "small", "--size", "64", "--set", "g1_dim=8", "--set", "g1_blocks=2",
            "--set", "g2_widths=[16,16,16,16,16,16,16]", "--set", "g2_tail=[8,8]", "--set", "d_dim=8"],
    "nfgan": ["--recipe", "paper"],  # 24 px
    "semantic": ["--recipe", "small", "--set", "width=8", "--set", "val_iterations=3", "--set", "val_candidates=2"],
}
COMMON = ["--batch", "2", "--device", "cpu", "--set", "workers=0", "--set", "save_every=2", "--set", "val_every=3",
          "--set", "val_per_photo=1", "--set", "log_every=1", "--set", "ema=0.5"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp-photos")
    for split, n in (("train", 3), ("val", 1)):
        (root / split).mkdir()
        for i in range(n):
            cv2.imwrite(str(root / split / f"p{i}.png"), photo_like(80, 96, seed=i + 10 * (split == "val")))
    return root


def torchrun(method, photos, out, dump, *extra):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "tests/ddp_cli.py",
           str(dump), "train", "--method", method, "--data", str(photos), "--out", str(out), *RUNS[method], *COMMON, *extra]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    print(f"{method}: {' '.join(extra)} took {time.perf_counter() - started:.1f} s")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def rank_states(dump):
    return [load_file(str(dump / f"rank-{r}.safetensors")) for r in (0, 1)]


@pytest.mark.parametrize("method", list(RUNS))
def test_two_processes_train_save_and_resume(method, photos, tmp_path):
    cls = get_method(method)
    out = tmp_path / method
    stdout = torchrun(method, photos, out, tmp_path / "first", "--steps", "3")

    # Both ranks finish; rank 0 alone validates (once, at the last step) and writes each checkpoint once.
    assert stdout.count("done: step 3") == 2
    assert stdout.count("val psnr ") == 1
    assert sorted(line for line in stdout.splitlines() if line.startswith("rank ")) == [
        "rank 0: export step 2", "rank 0: export step 3", "rank 0: save step 2", "rank 0: save step 3"]

    # DDP keeps the ranks' trainable weights equal (BatchNorm's running statistics are each rank's own
    # on the CPU, where there is no SyncBatchNorm).
    rank0, rank1 = rank_states(tmp_path / "first")
    method0 = cls(json.loads((tmp_path / f"{method}.json").read_text())["config"], torch.device("cpu"))
    params = {f"{name}.{k}" for name, net in method0.nets.items() for k, _ in net.named_parameters()}
    assert rank0.keys() == rank1.keys() and params <= rank0.keys()
    for k in params:
        assert torch.equal(rank0[k], rank1[k]), k

    # The export holds the inference networks with the EMA shadows in place of the trained weights.
    exported = load_file(str(tmp_path / f"{method}.safetensors"))
    state = load_file(str(tmp_path / f"{method}.train" / "step-00000003.safetensors"))
    assert {k.split(".")[0] for k in exported} == set(cls.inference_networks)
    assert set(cls.ema_networks) <= set(cls.inference_networks)
    for k, v in exported.items():
        net = k.split(".")[0]
        if net in cls.ema_networks:
            assert torch.equal(v, state[f"ema.{k}"]), k
        else:
            assert torch.equal(v, state[k]) and torch.equal(v, rank0[k]), k
        assert torch.equal(state[k], rank0[k]), k  # the training state keeps the trained weights
    assert any(not torch.equal(exported[k], rank0[k]) for k in exported if k.split(".")[0] in cls.ema_networks)

    # A resumed run picks the shadows up again and carries on, still in step.
    stdout = torchrun(method, photos, out, tmp_path / "second", "--steps", "4", "--resume")
    assert stdout.count("done: step 4") == 2
    rank0, rank1 = rank_states(tmp_path / "second")
    assert all(torch.equal(rank0[k], rank1[k]) for k in params)


def test_batchnorm_syncs_across_processes_on_cuda_only_and_keeps_its_keys(monkeypatch):
    from backend.training.trainer import Distributed

    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", lambda net, **kwargs: net)  # no process group here
    d = Distributed.__new__(Distributed)
    d.world, d.rank = 2, 0
    imt = {"g1_dim": 8, "g1_blocks": 2, "g2_widths": [16] * 7, "g2_tail": [8, 8], "d_dim": 8}
    for method, tweaks in (("imt", imt), ("nfgan", {}), ("semantic", {"width": 8})):
        cls = get_method(method)
        for device, sync in ((torch.device("cuda", 0), True), (torch.device("cpu"), False)):
            d.device = device  # the decision alone: the networks themselves stay on the CPU
            nets = cls(cls.resolve_config(None, tweaks), torch.device("cpu")).nets
            keys = {k: list(net.state_dict()) for k, net in nets.items()}
            params = {k: list(net.parameters()) for k, net in nets.items()}
            wrapped = {k: d.wrap(net) for k, net in nets.items()}
            norms = [m for net in wrapped.values() for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
            assert norms and all(isinstance(m, torch.nn.SyncBatchNorm) == sync for m in norms)
            assert {k: list(net.state_dict()) for k, net in wrapped.items()} == keys
            assert all(a is b for k, net in wrapped.items() for a, b in zip(net.parameters(), params[k], strict=True))


def test_the_process_group_backend_follows_the_device_the_run_uses(monkeypatch):
    # --device cpu on a GPU machine: NCCL cannot carry CPU tensors, the run needs gloo.
    from backend.training import trainer

    backends = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(trainer.dist, "init_process_group", lambda backend, **k: backends.append(backend))
    assert trainer.Distributed("cpu").device.type == "cpu"
    assert backends == ["gloo"]
