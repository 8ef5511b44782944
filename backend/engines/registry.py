"""Finds every engine: the built-in classical ones and the checkpoints in the models folder.

A checkpoint is `NAME.json` (metadata, "the card": at least "method" and
"config"; usually "training", "metrics") beside `NAME.safetensors`. The folder
is rescanned on every listing, so a checkpoint written by training shows up
without a restart; a card is read and checked again only when it or its
weights change (size or mtime). A checkpoint that cannot be used (a card that
is malformed or too big, weights whose header does not hold the networks, a
FIFO or a link out of the folder) is listed as broken with the reason; it
never stops the server or the other engines.
"""
from __future__ import annotations

import logging
import os
import stat
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch

from backend import jsonlimits
from backend.engines import cards
from backend.engines.base import Engine, Status

log = logging.getLogger(__name__)

CARD_LIMIT = 2**20  # bytes: the trainer's cards are a few KB; a bigger one is not a card, and would be slow to list
CARD_DEPTH = 32  # JSON nesting of a card (the trainer writes 3 levels)

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
    general: bool = True  # fills any selection at any size; False: narrower, listed after the general ones

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(d.pop("extra"))
        return d


def _checkpoint_listing(name: str, meta: dict[str, Any] | None, reason: str) -> Listing:
    meta = meta or {}
    extra = {k: meta[k] for k in ("training", "metrics", "config", "eval") if k in meta}
    extra["summary"] = cards.summary(name, meta)
    size, params = {}, {}
    if not reason:
        from backend.methods.engine import listed_params, size_rules

        size, params = size_rules(meta).as_dict(), listed_params(meta)
    method = str(meta.get("method", "unknown"))
    from backend.methods import get_method

    try:
        general = get_method(method).general
    except (KeyError, ImportError):
        general = True
    return Listing(name, method, "learned", "broken" if reason else "ready", reason,
                   meta.get("description") or f"{method} checkpoint", size, params, extra, general)


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
        # Keyed by id, each with the card's and weights' _signature pair it was made from.
        self._loaded: dict[str, tuple[Any, Engine]] = {}
        self._broken: dict[str, tuple[Any, str]] = {}  # load failures
        self._cards: dict[str, tuple[Any, dict[str, Any] | None, Listing]] = {}  # checked cards
        self._lock = threading.Lock()
        self._load_locks: dict[str, threading.Lock] = {}  # per checkpoint id: one load of it at a time

    # -- discovery ---------------------------------------------------------------------------------
    def _checkpoints(self) -> dict[str, Path]:
        if self.models_dir is None or not self.models_dir.is_dir():
            return {}
        found = {p.stem: p for p in sorted(self.models_dir.glob("*.json")) if not p.name.startswith(".")}
        return {k: v for k, v in found.items() if k not in self._builtins}

    def card_path(self, id: str) -> Path | None:
        """The card (NAME.json) of checkpoint `id`; None for built-in engines and unknown ids."""
        return self._checkpoints().get(id)

    def _file_problem(self, path: Path) -> str:
        """Why `path` must not be opened ('' when it is a regular file inside the models folder)."""
        try:
            if not path.resolve().is_relative_to(self.models_dir.resolve()):
                return "is a link to outside the models folder"
            mode = path.stat().st_mode
        except FileNotFoundError:
            return "is missing"
        except (OSError, RuntimeError) as e:  # RuntimeError: a symlink loop
            return f"cannot be read: {e}"
        return "" if stat.S_ISREG(mode) else "is not a regular file"  # a FIFO would block the reader forever

    def _read_meta(self, meta_path: Path) -> tuple[dict[str, Any] | None, str]:
        """(card, '') for a usable checkpoint, else (card or None, why it is broken). Reads only the weights' header."""
        name = meta_path.name
        problem = self._file_problem(meta_path)
        if problem:
            return None, f"metadata {name} {problem}"
        try:  # non-blocking: a FIFO put in its place since the check reads as empty instead of hanging
            with os.fdopen(os.open(meta_path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
                text = f.read(CARD_LIMIT + 1)
        except OSError as e:
            return None, f"metadata {name} cannot be read: {e}"
        if len(text) > CARD_LIMIT:
            return None, f"metadata {name} is over {CARD_LIMIT // 2**10} KiB"
        try:
            meta = jsonlimits.loads(text, CARD_DEPTH)
        except ValueError as e:
            return None, f"metadata {name} is not valid JSON: {e}"
        if not isinstance(meta, dict) or not isinstance(meta.get("method"), str):
            return None, f"metadata {name} does not name a 'method'"
        if _loader(meta["method"]) is None:
            from backend.methods import available

            known = ", ".join(available()) or "none in this version"
            return None, f"method '{meta['method']}' is not available (available: {known})"
        if not isinstance(meta.get("config"), dict):
            return None, f"metadata {name}: 'config' must be a JSON object, got {type(meta.get('config')).__name__}"
        for key in ("training", "metrics", "eval"):
            if not isinstance(meta.get(key, {}), dict):
                return None, f"metadata {name}: '{key}' must be a JSON object"
        for key in ("description", "good_for"):
            if not isinstance(meta.get(key, ""), str):
                return None, f"metadata {name}: '{key}' must be a string"
        from backend.methods.engine import size_rules

        try:
            size_rules(meta)
        except ValueError as e:
            return meta, f"metadata {name}: {e}"
        weights = meta_path.with_suffix(".safetensors")
        problem = self._file_problem(weights)
        if problem:
            return meta, f"weights file {weights.name} {problem}"
        return meta, _weights_problem(weights, meta["method"])

    def _checked(self, name: str, meta_path: Path) -> tuple[dict[str, Any] | None, Listing]:
        """(card, listing) of a checkpoint; the files are read again only when the card or its weights change."""
        key = (_signature(meta_path), _signature(meta_path.with_suffix(".safetensors")))
        cached = self._cards.get(name)
        if cached is None or cached[0] != key:
            try:
                meta, reason = self._read_meta(meta_path)
                listing = _checkpoint_listing(name, meta, reason)
            except Exception as e:  # noqa: BLE001 - a card no check foresaw must not take the listing down
                log.exception("checking %s", meta_path)
                meta, listing = None, _checkpoint_listing(name, None, f"metadata {meta_path.name} cannot be used: {e}")
            cached = self._cards[name] = (key, meta, listing)
        _, meta, listing = cached
        broken = self._broken.get(name)
        if listing.status == "ready" and broken and broken[0] == key:
            listing = replace(listing, status="broken", reason=broken[1])
        return meta, listing

    def listings(self) -> list[Listing]:
        found = self._checkpoints()
        for gone in set(self._cards) - set(found):
            self._cards.pop(gone, None)
        return [_engine_listing(self._builtin(i)) for i in self._builtins] + [
            self._checked(name, meta_path)[1] for name, meta_path in found.items()]

    def loaded(self) -> list[str]:
        return sorted(self._loaded)

    # -- loading -----------------------------------------------------------------------------------
    def _builtin(self, id: str) -> Engine:
        with self._lock:
            if id not in self._loaded:
                self._loaded[id] = (None, self._builtins[id](self.device))
            return self._loaded[id][1]

    def get(self, id: str | None) -> Engine:
        """The engine for an id (None = default). Raises UnknownModel, or RuntimeError if broken."""
        id = id or self.default
        if id in self._builtins:
            return self._builtin(id)
        meta_path = self._checkpoints().get(id)
        if meta_path is None:
            raise UnknownModel(id)
        key = (_signature(meta_path), _signature(meta_path.with_suffix(".safetensors")))
        with self._lock:
            load_lock = self._load_locks.setdefault(id, threading.Lock())
        # One load per checkpoint at a time; the registry's own lock is not held meanwhile, so built-in
        # engines and other checkpoints are served while a large file loads.
        with load_lock:
            with self._lock:
                cached = self._loaded.get(id)
                if cached and cached[0] == key:
                    return cached[1]
                meta, listing = self._checked(id, meta_path)
            if listing.reason:
                raise RuntimeError(listing.reason)
            try:
                engine = _loader(meta["method"])(id, meta_path.with_suffix(".safetensors"), meta, self.device)
            except Exception as e:  # a bad file must not take the server down
                with self._lock:
                    self._broken[id] = (key, f"failed to load: {e}")
                raise RuntimeError(f"checkpoint '{id}' failed to load: {e}") from None
            with self._lock:
                self._loaded[id] = (key, engine)
                self._broken.pop(id, None)
            return engine


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed file: (mtime in ns, size, inode); None when it cannot be stat'ed."""
    try:
        st = path.stat()
    except (OSError, RuntimeError):
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


def _weights_problem(weights: Path, method: str) -> str:
    """'' when the safetensors header is sound and holds every network serving needs, else why not."""
    from safetensors import safe_open

    from backend.methods import get_method

    try:  # reads the header only (its size, the offsets and dtypes are checked by safetensors)
        with safe_open(str(weights), "pt") as f:
            keys = set(f.keys())
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error type for every malformed header
        return f"weights file {weights.name} failed to load: {e}"
    missing = [net for net in get_method(method).inference_networks if not any(k.startswith(f"{net}.") for k in keys)]
    if missing:
        return f"weights file {weights.name} holds no '{', '.join(missing)}' network"
    return ""
