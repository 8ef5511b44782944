"""The learned methods, by id. Each lives in its own folder and is imported only when asked for."""
from __future__ import annotations

import importlib

from backend.training.method import Method

# id -> module holding a `METHOD` class; filled in as each paper's method lands.
BUILTIN: dict[str, str] = {
    "cisi": "backend.methods.cisi",
    "imt": "backend.methods.imt",
    "isnet": "backend.methods.isnet",
    "nfgan": "backend.methods.nfgan",
    "semantic": "backend.methods.semantic",
}

_registered: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Add a method (also usable as a class decorator, e.g. by tests and extensions)."""
    _registered[cls.id] = cls
    return cls


def available() -> list[str]:
    return sorted(set(BUILTIN) | set(_registered))


def get_method(method_id: str) -> type[Method]:
    if method_id in _registered:
        return _registered[method_id]
    if method_id in BUILTIN:
        return register(importlib.import_module(BUILTIN[method_id]).METHOD)
    raise KeyError(f"unknown method '{method_id}' (available: {', '.join(available()) or 'none'})")
