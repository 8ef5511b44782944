"""Copy the GIMP 3 plug-in folder into the user's GIMP 3.0 and 3.2 profiles."""
from __future__ import annotations

import os
import shutil
import stat
import sys
from pathlib import Path

from backend.install import plugins_root

PLUGIN = "inpaint-selection"
SOURCE = plugins_root() / "gimp_plugin" / "plug-ins" / PLUGIN
VERSIONS = ("3.0", "3.2")  # the profile folder carries GIMP's minor version


def gimp_config_root(platform: str = sys.platform, env: dict[str, str] | None = None, home: Path | None = None) -> Path:
    """The folder holding GIMP's versioned profiles (GIMP/3.0, GIMP/3.2)."""
    env = os.environ if env is None else env
    home = Path.home() if home is None else home
    if platform.startswith("win"):
        return Path(env.get("APPDATA") or home / "AppData" / "Roaming") / "GIMP"
    if platform == "darwin":
        return home / "Library" / "Application Support" / "GIMP"
    return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "GIMP"


def plugin_folders(root: Path) -> list[Path]:
    """plug-ins folders of the GIMP 3 profiles that exist; all of them when none does yet.

    Creating a profile folder for a version that has never run would stop GIMP from offering to
    migrate the user's older settings into it, so existing profiles are preferred.
    """
    existing = [root / v for v in VERSIONS if (root / v).is_dir()]
    return [p / "plug-ins" for p in (existing or [root / v for v in VERSIONS])]


def _copy(dest_parent: Path) -> Path:
    target = dest_parent / PLUGIN
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(SOURCE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    main = target / f"{PLUGIN}.py"
    # GIMP registers only an executable NAME/NAME.py; a checkout or archive may have lost the bit.
    main.chmod(main.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return target


def install(dest: Path | None) -> list[Path]:
    if not (SOURCE / f"{PLUGIN}.py").is_file():
        raise SystemExit(f"the GIMP plug-in is not in {SOURCE}: this installation lacks it; reinstall the backend "
                         "(pip install . or the wheel)")
    folders = [Path(dest)] if dest is not None else plugin_folders(gimp_config_root())
    written = []
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        written.append(_copy(folder))
    return written
