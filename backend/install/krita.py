"""Install the Krita plugin into the user's profile and enable it (Krita loads user plugins only when enabled).

Copies the same files as the zip for Tools > Scripts > Import Python Plugin from File
(krita_plugin/build_zip.py), sets `[python] enable_inpaint_selection=true` in kritarc,
and records how to start this backend, so the docker's "Start backend" button works.
Krita rewrites kritarc when it quits: install while Krita is closed.
"""
from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import sys
from pathlib import Path

from backend.install import from_checkout, plugins_root

NAME = "inpaint_selection"
PLUGIN_DIR = plugins_root() / "krita_plugin"


def _home() -> Path:
    return Path(os.environ.get("HOME") or Path.home())


def resources_dir() -> Path:
    """Krita's per-user resource folder (it holds pykrita/ and actions/)."""
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or _home() / "AppData" / "Roaming") / "krita"
    if sys.platform == "darwin":
        return _home() / "Library" / "Application Support" / "krita"
    return Path(os.environ.get("XDG_DATA_HOME") or _home() / ".local" / "share") / "krita"


def kritarc_path() -> Path:
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA") or _home() / "AppData" / "Local") / "kritarc"
    if sys.platform == "darwin":
        return _home() / "Library" / "Preferences" / "kritarc"
    return Path(os.environ.get("XDG_CONFIG_HOME") or _home() / ".config") / "kritarc"


def set_ini_value(text: str, group: str, key: str, value: str) -> str:
    """Set key=value in [group] of a KConfig file, leaving every other line as it was."""
    lines = text.splitlines()
    header = f"[{group}]"
    try:
        start = lines.index(header)
    except ValueError:
        if lines and lines[-1].strip():
            lines.append("")
        return "\n".join([*lines, header, f"{key}={value}"]) + "\n"
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    for i in range(start + 1, end):
        if lines[i].split("=", 1)[0].strip() == key:
            lines[i] = f"{key}={value}"
            break
    else:
        insert = end
        while insert > start + 1 and not lines[insert - 1].strip():  # keep the blank line before the next group
            insert -= 1
        lines.insert(insert, f"{key}={value}")
    return "\n".join(lines) + "\n"


def models_dir() -> Path:
    """The checkout's models/ folder; for an installed wheel, models/ in the folder install-plugins runs in
    (where `inpaint-backend serve` and `train --out models/NAME` would use it)."""
    return (PLUGIN_DIR.parent if from_checkout() else Path.cwd()) / "models"


def backend_command() -> str:
    """How the docker starts this very backend: this Python (it has the backend installed) and its models folder.

    The plugin appends --host and --port. Forward slashes, because KConfig reads backslashes as escapes.
    """
    python, models = Path(sys.executable).as_posix(), models_dir().resolve().as_posix()
    quote = (lambda s: f'"{s}"') if sys.platform == "win32" else shlex.quote
    return f"{quote(python)} -m backend.cli serve --models-dir {quote(models)}"


def _is_venv_bin(folder: str) -> bool:
    return bool(folder) and (Path(folder).parent / "pyvenv.cfg").is_file()


def python_environment_notes(env: dict[str, str] | None = None) -> list[str]:
    """What in this shell would keep a Krita started from it from loading Python plugins, and the fix.

    Krita's embedded Python takes its library from the first python3 on PATH (a virtual environment's has
    no PyQt5) and honours PYTHONHOME and PYTHONPATH: Krita then logs "No module named 'PyQt5'" and shows
    no Python plugin at all, before this plugin could say anything.
    """
    env = os.environ if env is None else env
    causes = [f"{var} is set" for var in ("PYTHONHOME", "PYTHONPATH") if env.get(var)]
    first = shutil.which("python3", path=env.get("PATH", "")) if sys.platform != "win32" else None
    if first and _is_venv_bin(str(Path(first).parent)):
        causes.append(f"the first python3 on PATH is a virtual environment's ({first})")
    if not causes:
        return []
    return [f"Krita started from this shell would load no Python plugins ({'; '.join(causes)}; its log would say "
            f"\"No module named 'PyQt5'\"). Start Krita from the desktop menu, or from this shell with: "
            f"{start_command(env)}"]


def start_command(env: dict[str, str]) -> str:
    """A shell command line that starts Krita from a shell with `env` without what breaks its Python:
    no PYTHONHOME or PYTHONPATH, no virtual environment's bin/ on PATH."""
    clean = os.pathsep.join(f for f in env.get("PATH", "").split(os.pathsep) if not _is_venv_bin(f))
    unset = " ".join(f"-u {var}" for var in ("PYTHONHOME", "PYTHONPATH") if env.get(var))
    return f"env {unset + ' ' if unset else ''}PATH={shlex.quote(clean)} krita"


def _plugin_files() -> list[tuple[Path, str]]:
    builder = PLUGIN_DIR / "build_zip.py"
    if not builder.is_file():
        raise SystemExit(f"the Krita plugin is not at {PLUGIN_DIR}: this installation lacks it; reinstall the backend "
                         "(pip install . or the wheel) or use the zip with Import Python Plugin from File")
    spec = importlib.util.spec_from_file_location("inpaint_krita_build_zip", builder)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.plugin_files()


def install(dest: Path | None = None) -> list[Path]:
    """Copy the plugin into `dest` (default: Krita's pykrita folder) and enable it; returns what was written.

    The shortcut file goes to the `actions` folder beside `dest`, as Krita's own importer does.
    """
    pykrita = Path(dest) if dest is not None else resources_dir() / "pykrita"
    roots = {"pykrita": pykrita, "actions": pykrita.parent / "actions"}
    package = pykrita / NAME
    if package.exists():
        shutil.rmtree(package)  # no stale modules from an older version
    for source, target in _plugin_files():
        top, rest = target.split("/", 1)
        path = roots[top] / rest
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)

    rc = kritarc_path()
    text = rc.read_text(encoding="utf-8") if rc.is_file() else ""
    text = set_ini_value(text, "python", f"enable_{NAME}", "true")
    text = set_ini_value(text, NAME, "backend_command", backend_command())
    rc.parent.mkdir(parents=True, exist_ok=True)
    rc.write_text(text, encoding="utf-8")
    return [pykrita / f"{NAME}.desktop", package, roots["actions"] / f"{NAME}.action", rc]
