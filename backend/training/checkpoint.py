"""Checkpoints: safetensors weights with JSON metadata, written atomically.

Two kinds, both under the `--out` name:
- the served export, `NAME.safetensors` + `NAME.json` beside it: inference
  networks only (half precision optional). The server reloads it when the JSON
  changes, so the JSON is always written last.
- the training state in `NAME.train/`: every network, plus optimisers,
  schedulers, AMP scaler, RNG states and the step, as `step-N.safetensors` +
  `step-N.state.pt` + `step-N.json`, and `latest.json` naming the newest
  complete one. A kill at any moment leaves the previous one intact.

Resuming takes the newest checkpoint that loads whole, so a corrupt
`latest.json` or a truncated newest file falls back to the one before, and a
run starts by removing the temporary files a killed save left behind. Files
are created with the process's umask (0644 with the usual 022), like any
other file the user writes.

Nothing is ever unpickled: weights are safetensors and the state file is read
with torch.load(weights_only=True).
"""
from __future__ import annotations

import json
import os
import secrets
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save
from torch import nn


def atomic_write(path: Path, write) -> None:
    """Call write(tmp_path), fsync, then rename over `path`: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    # Created here, not by mkstemp (0600): mode 0666 less the umask, as any file the user writes. `write` must
    # write into this file (safetensors' save_file would replace it with a 0600 file of its own).
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_partial_writes(folder: Path, names: str = "*") -> list[Path]:
    """Delete what atomic_write left in `folder` when killed mid-write: `.NAME.*.tmp` for NAME matching `names`."""
    left = sorted(folder.glob(f".{names}.*.tmp")) if folder.is_dir() else []
    for tmp in left:
        tmp.unlink(missing_ok=True)
    return left


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str)))


def network_tensors(nets: dict[str, nn.Module], names=None, half: bool = False) -> dict[str, torch.Tensor]:
    """Flatten networks into '<net>.<param>' tensors (contiguous, on the CPU)."""
    out = {}
    for name, net in nets.items():
        if names is not None and name not in names:
            continue
        net = getattr(net, "module", net)  # unwrap DistributedDataParallel
        for key, value in net.state_dict().items():
            t = value.detach().cpu()
            if half and t.is_floating_point():
                t = t.half()
            out[f"{name}.{key}"] = t.contiguous()
    return out


def load_networks(nets: dict[str, nn.Module], tensors: dict[str, torch.Tensor]) -> None:
    for name, net in nets.items():
        net = getattr(net, "module", net)
        prefix = f"{name}."
        net.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})


def export(path_stem: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write the served checkpoint: weights first, then the JSON the server watches."""
    weights = path_stem.with_name(path_stem.name + ".safetensors")
    atomic_write(weights, lambda tmp: tmp.write_bytes(save(tensors)))
    write_json(path_stem.with_name(path_stem.name + ".json"), meta)
    return weights


def save_training_state(folder: Path, step: int, tensors: dict[str, torch.Tensor], state: dict[str, Any],
                        meta: dict[str, Any], keep: int = 2) -> None:
    stem = folder / f"step-{step:08d}"
    atomic_write(stem.with_suffix(".safetensors"), lambda tmp: tmp.write_bytes(save(tensors)))
    atomic_write(stem.with_suffix(".state.pt"), lambda tmp: torch.save(state, tmp))
    write_json(stem.with_suffix(".json"), meta)
    write_json(folder / "latest.json", {"step": step, "stem": stem.name})
    old = sorted(folder.glob("step-*.json"))[:-keep]
    for meta_file in old:
        base = meta_file.name[: -len(".json")]
        for suffix in (".safetensors", ".state.pt", ".json"):
            (folder / f"{base}{suffix}").unlink(missing_ok=True)


def load_training_state(folder: Path) -> tuple[int, dict[str, torch.Tensor], dict[str, Any], dict[str, Any]] | None:
    """(step, tensors, state, meta) of the newest checkpoint that loads whole, or None when there is none.

    Each one skipped is named in a warning. When none loads, the newest one's error is raised.
    """
    latest = folder / "latest.json"
    if latest.is_file():
        try:
            json.loads(latest.read_text())["stem"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            warnings.warn(f"{latest} is unreadable ({e!r}): resuming from the newest checkpoint that loads", stacklevel=2)
    stems = sorted((p.name[: -len(".json")] for p in folder.glob("step-*.json")), reverse=True)
    first_error = None
    for name in stems:
        stem = folder / name
        try:
            meta = json.loads(stem.with_suffix(".json").read_text())
            tensors = load_file(str(stem.with_suffix(".safetensors")))
            state = torch.load(stem.with_suffix(".state.pt"), map_location="cpu", weights_only=True)
            return int(meta["step"]), tensors, state, meta
        except Exception as e:  # noqa: BLE001 - truncated, corrupt or missing: any of them means not this one
            first_error = first_error or e
            warnings.warn(f"checkpoint {stem.name} does not load ({type(e).__name__}: {e}); trying the one before", stacklevel=2)
    if first_error is not None:
        raise first_error
    return None
