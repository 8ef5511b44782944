"""Finds every engine: the built-in classical ones and the checkpoints in the models folder.

A checkpoint is `NAME.json` (metadata: at least "method"; usually "config",
"training", "metrics") beside `NAME.safetensors`. The folder is rescanned on
every listing, so a checkpoint written by training shows up without a restart.
A checkpoint that cannot be used is listed as broken with the reason; it never
stops the server from starting.
"""
from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from backend.engines.base import Engine, Status

CheckpointLoader = Callable[[str, Path, dict[str, Any], torch.device], Engine]


def _loader(method: str) -> CheckpointLoader | None:
    """The engine factory for a checkpoint's method, or None when this version lacks the method."""
    from backend.methods import get_method
    from backend.methods.engine import load_checkpoint

    try:
        get_method(method)
    except (KeyError, ImportError):
        return None
    return load_checkpoint


class UnknownModel(KeyError):
    pass


@dataclass
class Listing:
    """One entry of GET /api/v1/models, for engines and for checkpoints not loaded yet."""

    id: str
    method: str
    kind: str
    status: Status
    reason: str
    description: str
    size: dict[str, Any]
    params: dict[str, Any]
    extra: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d


def _engine_listing(engine: Engine) -> Listing:
    status, reason = engine.status()
    return Listing(engine.id, engine.method, engine.kind, status, reason, engine.description,
                   engine.size.as_dict(), {k: p.as_dict() for k, p in engine.params.items()}, engine.info())


class Registry:
    def __init__(self, models_dir: str | Path | None, device: torch.device | str = "cpu",
                 builtins: list[type[Engine]] | None = None):
        from backend.classical import ENGINES

        self.models_dir = Path(models_dir) if models_dir else None
        self.device = torch.device(device)
        self._builtins = {cls.id: cls for cls in (builtins if builtins is not None else ENGINES)}
        self.default = next(iter(self._builtins))
        self._loaded: dict[str, tuple[float, Engine]] = {}  # id -> (checkpoint mtime, engine)
        self._broken: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    # -- discovery ---------------------------------------------------------------------------------
    def _checkpoints(self) -> dict[str, Path]:
        if self.models_dir is None or not self.models_dir.is_dir():
            return {}
        found = {p.stem: p for p in sorted(self.models_dir.glob("*.json")) if not p.name.startswith(".")}
        return {k: v for k, v in found.items() if k not in self._builtins}

    def _read_meta(self, meta_path: Path) -> tuple[dict[str, Any] | None, str]:
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            return None, f"metadata {meta_path.name} is not valid JSON: {e}"
        if not isinstance(meta, dict) or not isinstance(meta.get("method"), str):
            return None, f"metadata {meta_path.name} does not name a 'method'"
        weights = meta_path.with_suffix(".safetensors")
        if not weights.is_file():
            return None, f"weights file {weights.name} is missing"
        if _loader(meta["method"]) is None:
            from backend.methods import available

            known = ", ".join(available()) or "none in this version"
            return None, f"method '{meta['method']}' is not available (available: {known})"
        return meta, ""

    def listings(self) -> list[Listing]:
        out = [_engine_listing(self._builtin(i)) for i in self._builtins]
        for name, meta_path in self._checkpoints().items():
            meta, reason = self._read_meta(meta_path)
            broken = self._broken.get(name)
            if meta is not None and broken and broken[0] == meta_path.stat().st_mtime:
                reason = broken[1]
            status: Status = "broken" if reason else "ready"
            meta = meta or {}
            extra = {k: meta[k] for k in ("training", "metrics", "config") if k in meta}
            size, params = {}, {}
            if not reason:
                from backend.methods.engine import listed_params, size_rules

                size, params = size_rules(meta).as_dict(), listed_params(meta)
            out.append(Listing(name, str(meta.get("method", "unknown")), "learned", status, reason,
                               str(meta.get("description", f"{meta.get('method', 'unknown')} checkpoint")),
                               size, params, extra))
        return out

    def loaded(self) -> list[str]:
        return sorted(self._loaded)

    # -- loading -----------------------------------------------------------------------------------
    def _builtin(self, id: str) -> Engine:
        with self._lock:
            if id not in self._loaded:
                self._loaded[id] = (0.0, self._builtins[id](self.device))
            return self._loaded[id][1]

    def get(self, id: str | None) -> Engine:
        """The engine for an id (None = default). Raises UnknownModel, or RuntimeError if broken."""
        id = id or self.default
        if id in self._builtins:
            return self._builtin(id)
        meta_path = self._checkpoints().get(id)
        if meta_path is None:
            raise UnknownModel(id)
        mtime = meta_path.stat().st_mtime
        with self._lock:
            cached = self._loaded.get(id)
            if cached and cached[0] == mtime:
                return cached[1]
            meta, reason = self._read_meta(meta_path)
            if meta is None:
                raise RuntimeError(reason)
            try:
                engine = _loader(meta["method"])(id, meta_path.with_suffix(".safetensors"), meta, self.device)
            except Exception as e:  # a bad file must not take the server down
                self._broken[id] = (mtime, f"failed to load: {e}")
                raise RuntimeError(f"checkpoint '{id}' failed to load: {e}") from None
            self._loaded[id] = (mtime, engine)
            self._broken.pop(id, None)
            return engine
