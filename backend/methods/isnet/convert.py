"""Import the official ISNet generator (`InpaintingModel_gen.pth`) as a served checkpoint.

The official file is `torch.save({'generator': state_dict, 'epoch': int})`, with
legacy spectral-norm keys (`<conv>.weight_orig`, `.weight_u`, `.weight_v`) and
possibly a `module.` prefix from nn.DataParallel (methods.md §5.8, Appendix A).
Our Generator uses the same module names and the same legacy spectral norm, so
after the prefix is stripped the tensors load unchanged: u and v included, so
the imported model reproduces the official eval-mode outputs exactly.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from backend.methods.isnet.model import Generator, count_parameters
from backend.training import checkpoint

OFFICIAL_FILE = "InpaintingModel_gen.pth"


class CheckpointImportError(ValueError):
    """The file is not an official ISNet generator checkpoint (the message says why)."""


def read_official(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The generator's state dict (prefix stripped) and what else the file says (epoch)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        # weights_only: an official file holds only tensors and an int; anything else is refused unexecuted.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - many unpickling errors, one meaning
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointImportError(f"{path.name} is not a PyTorch checkpoint that loads with weights_only=True "
                                    f"({reason[:200]})") from None
    if not isinstance(obj, dict):
        raise CheckpointImportError(f"{path.name} holds a {type(obj).__name__}, not a checkpoint dict")
    if "generator" in obj:
        state, info = obj["generator"], {k: v for k, v in obj.items() if k != "generator" and isinstance(v, (int, float, str))}
    elif "discriminator" in obj:
        raise CheckpointImportError(f"{path.name} holds the discriminator; import the generator file, {OFFICIAL_FILE}")
    else:
        state, info = obj, {}  # a bare state dict, as some re-saved copies are
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointImportError(f"{path.name} has no generator state dict (expected {{'generator': state_dict, 'epoch': N}})")
    if all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module."):]: v for k, v in state.items()}
    return dict(state), info


def blocks_of(state: dict[str, torch.Tensor]) -> int:
    """Residual blocks per stage, read from the keys (stage0.branches.0.<k>.conv_block...)."""
    found = {int(m.group(1)) for k in state if (m := re.match(r"stage0\.branches\.0\.(\d+)\.conv_block\.", k))}
    if not found or "layer1.downsample.weight" not in state:
        sample = ", ".join(sorted(state)[:3])
        raise CheckpointImportError(f"not an ISNet generator: no layer1/stage0 keys (found e.g. {sample})")
    if found != set(range(max(found) + 1)):
        raise CheckpointImportError(f"not an ISNet generator: residual blocks {sorted(found)} of stage 0 are not 0..n-1")
    return max(found) + 1


def to_generator(state: dict[str, torch.Tensor]) -> Generator:
    """A Generator holding exactly the official tensors; a clear error on any missing, extra or misshapen key."""
    net = Generator(blocks_of(state))
    own = net.state_dict()
    misshapen = [f"{k} {tuple(v.shape)} (expected {tuple(own[k].shape)})"
                 for k, v in state.items() if k in own and v.shape != own[k].shape]
    if misshapen:
        raise CheckpointImportError(f"not an ISNet generator: {len(misshapen)} tensors have the wrong shape, e.g. "
                                    + "; ".join(misshapen[:3]))
    # Non-strict only to word the error ourselves. (torch's spectral-norm load hook also fills in
    # weight_v for pre-1.0 files that stored `weight` instead.)
    result = net.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if result.missing_keys or result.unexpected_keys:
        parts = []
        if result.missing_keys:
            parts.append(f"{len(result.missing_keys)} missing (e.g. {', '.join(result.missing_keys[:3])})")
        if result.unexpected_keys:
            parts.append(f"{len(result.unexpected_keys)} unexpected (e.g. {', '.join(result.unexpected_keys[:3])})")
        raise CheckpointImportError("not an ISNet generator: keys " + "; ".join(parts))
    return net.eval()


def import_checkpoint(source: Path, out: Path) -> Path:
    """Write `out`.safetensors + `out`.json from the official generator file; returns the JSON path."""
    from backend.methods.isnet.method import ISNet

    source = Path(source)
    state, info = read_official(source)
    net = to_generator(state)
    blocks = blocks_of(state)
    config = {**ISNet.resolve_config("paper", {"blocks": blocks}), "method": ISNet.id}
    meta = {
        "method": ISNet.id,
        "description": f"{ISNet.description} Official weights imported from {source.name}.",
        "config": config,
        "training": {"source": "official ISNet release (GuardSkill/Large-Scale-Feature-Inpainting, CC BY-NC 4.0)",
                     "file": source.name, **info, "parameters": count_parameters(net)},
        "versions": {"torch": torch.__version__},
    }
    out = Path(out)
    checkpoint.export(out, checkpoint.network_tensors({"generator": net}), meta)
    return out.with_name(out.name + ".json")
