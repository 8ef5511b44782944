"""A built wheel carries both editor plugins: installed into a fresh venv, `install-plugins` works from it alone."""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT

pytest.importorskip("setuptools", reason="building the wheel without build isolation needs setuptools")


def run(*cmd, **kwargs) -> str:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kwargs)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout


def test_wheel_installs_both_plugins_without_a_checkout(tmp_path):
    src = tmp_path / "src"  # a copy: building writes build/ and egg-info beside the sources
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                                             ".pytest_cache", ".venv", "models", "tests", "benchmarks"))
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
        "-w", tmp_path / "wheels", src)
    wheel = next((tmp_path / "wheels").glob("inpaint_backend-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"backend/plugins/krita_plugin/build_zip.py", "backend/plugins/krita_plugin/inpaint_selection/docker.py",
            "backend/plugins/krita_plugin/inpaint_selection.desktop",
            "backend/plugins/gimp_plugin/plug-ins/inpaint-selection/inpaint-selection.py"} <= names
    assert not [n for n in names if "__pycache__" in n or "/ci/" in n or n.endswith(".png")]

    venv = tmp_path / "venv"  # torch and the other dependencies come from this Python's site-packages
    run(sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", venv)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "--force-reinstall", "-q", wheel)

    work = tmp_path / "work"  # not the checkout: nothing may come from it
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(HOME=str(tmp_path / "home"), XDG_DATA_HOME=str(tmp_path / "data"), XDG_CONFIG_HOME=str(tmp_path / "config"))
    where = run(python, "-c", "import backend.install as i; print(i.plugins_root())", cwd=work, env=env).strip()
    assert where.startswith(str(venv)), where
    script = venv / ("Scripts/inpaint-backend.exe" if os.name == "nt" else "bin/inpaint-backend")
    out = run(script, "install-plugins", "--krita", "--gimp", "--dest", tmp_path / "dest", cwd=work, env=env)
    assert "krita: installed" in out and "gimp: installed" in out
    dest = tmp_path / "dest"
    source = ROOT / "krita_plugin" / "inpaint_selection" / "docker.py"
    assert (dest / "inpaint_selection" / "docker.py").read_bytes() == source.read_bytes()
    assert (dest / "inpaint_selection.desktop").is_file() and (tmp_path / "actions" / "inpaint_selection.action").is_file()
    gimp_main = dest / "inpaint-selection" / "inpaint-selection.py"
    assert gimp_main.stat().st_mode & stat.S_IXUSR
    kritarc = (tmp_path / "config" / "kritarc").read_text()
    assert f"--models-dir {(work / 'models').as_posix()}" in kritarc and str(venv) in kritarc
