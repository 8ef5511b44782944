"""Installers that copy the editor plugins into the user's Krita or GIMP profile.

Each module here exposes install(dest: Path | None) -> list[Path] and returns what it wrote.
"""
from __future__ import annotations

from pathlib import Path

PACKAGED = Path(__file__).resolve().parents[1] / "plugins"  # a wheel's copies (setup.py puts them there)
CHECKOUT = Path(__file__).resolve().parents[2]


def plugins_root() -> Path:
    """The folder holding krita_plugin/ and gimp_plugin/: a wheel's copies, else the source checkout."""
    return PACKAGED if PACKAGED.is_dir() else CHECKOUT


def from_checkout() -> bool:
    return plugins_root() == CHECKOUT
