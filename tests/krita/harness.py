"""Run the real Krita GUI under Xvfb with the plugin installed as `inpaint-backend install-plugins --krita`
does, plus the CI-only self-test plugin that drives it (inpaint_selftest/).

    python tests/krita/harness.py URL OUT [--screenshot] [--chroot DIR]   # by hand, against a running backend
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from backend.install import krita as installer  # noqa: E402

# Kept between runs: Krita builds its resource database on a fresh profile (about 20 s).
PROFILE = Path(tempfile.gettempdir()) / "inpaint-krita-e2e-profile"
SELFTEST = "inpaint_selftest"
# Krita's embedded Python finds its library from the python3 on PATH: it must be the system one (with PyQt5),
# not the pyenv/venv Python running the tests.
SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def missing_tools() -> list[str]:
    return [tool for tool in ("krita", "xvfb-run") if shutil.which(tool) is None]


@contextlib.contextmanager
def _environ(**values: str):
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def prepare_profile(on_disk: Path, seen_as: Path, url: str) -> dict[str, str]:
    """Install both plugins into the profile at `on_disk` (which Krita sees as `seen_as`: they differ in a chroot)
    and return the variables Krita must run with."""
    data, config, runtime, tmp = on_disk / "data", on_disk / "config", on_disk / "runtime", on_disk / "tmp"
    # tmp: Krita's swap files and frame caches, left behind since the self-test ends it with os._exit.
    for stale in (data / "krita" / "pykrita", data / "krita" / "actions", config / "kritarc", tmp):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    with _environ(HOME=str(on_disk), XDG_DATA_HOME=str(data), XDG_CONFIG_HOME=str(config)):
        installer.install(None)  # the same code path as `inpaint-backend install-plugins --krita`
    pykrita = data / "krita" / "pykrita"
    shutil.copyfile(HERE / f"{SELFTEST}.desktop", pykrita / f"{SELFTEST}.desktop")
    shutil.copytree(HERE / SELFTEST, pykrita / SELFTEST, ignore=shutil.ignore_patterns("__pycache__"))
    rc = config / "kritarc"
    text = installer.set_ini_value(rc.read_text(), "python", f"enable_{SELFTEST}", "true")
    text = installer.set_ini_value(text, "inpaint_selection", "url", url)  # as if the user typed it in the docker
    rc.write_text(text)
    # A Krita the developer has open would otherwise receive this run and the test Krita would quit at once.
    (config / "kritadisplayrc").write_text("[General]\nEnableSingleApplication=false\n")
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)
    tmp.mkdir()
    p = seen_as
    return dict(HOME=str(p), XDG_DATA_HOME=str(p / "data"), XDG_CONFIG_HOME=str(p / "config"),
                XDG_CACHE_HOME=str(p / "cache"), XDG_RUNTIME_DIR=str(p / "runtime"), TMPDIR=str(p / "tmp"),
                LANG="C.UTF-8", PATH=SYSTEM_PATH)


@contextlib.contextmanager
def chroot_mounts(root: Path):
    """proc, dev and dev/pts mounted inside `root` while Krita runs there, under the lock every run in that chroot
    takes (gimp_plugin/ci/gimp3-batch.sh): one run at a time, and no run loses its mounts to another's clean-up."""
    import fcntl

    with open(root / ".gimp3-batch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mounted = []
        try:
            for target, how in (("proc", ["-t", "proc", "proc"]), ("dev", ["--bind", "/dev"]),
                                ("dev/pts", ["--bind", "/dev/pts"])):
                if subprocess.run(["mountpoint", "-q", str(root / target)]).returncode != 0:
                    subprocess.run(["mount", *how, str(root / target)], check=True)
                    mounted.append(root / target)
            yield
        finally:
            for target in reversed(mounted):
                if subprocess.run(["umount", str(target)]).returncode != 0:
                    subprocess.run(["umount", "-l", str(target)])


def run_krita(url: str, out: Path, down_url: str = "http://127.0.0.1:9", start_url: str = "",
              screenshot: bool = False, profile: Path = PROFILE, timeout: float = 300,
              chroot: Path | None = None, shell: dict[str, str] | None = None,
              command: str = "krita") -> tuple[int, str, float]:
    """Start Krita, let the self-test drive the plugin, return (exit code, log, seconds).

    down_url: where nothing listens; start_url: a free port for the docker's Start backend button ("" skips it).
    chroot: run the Krita installed in that root (e.g. Debian trixie's 5.2) instead of this system's; it shares
    the network (the backend stays outside), and proc, dev and dev/pts are mounted for the run (needs root).
    shell: variables of the user's shell that Krita inherits over the clean ones (e.g. an activated venv's);
    command: the shell command line that starts Krita in it, e.g. the one install-plugins prints.
    """
    def on_disk(path: Path) -> Path:
        return Path(chroot) / path.relative_to("/") if chroot else path

    seen_out = Path("/tmp/inpaint-krita-e2e-out") if chroot else out
    shutil.rmtree(on_disk(seen_out), ignore_errors=True)
    on_disk(seen_out).mkdir(parents=True)
    krita_env = prepare_profile(on_disk(profile), profile, url)
    krita_env.update(INPAINT_SELFTEST_OUT=str(seen_out), INPAINT_SELFTEST_DOWN_URL=down_url,
                     INPAINT_SELFTEST_START_URL=start_url, INPAINT_SELFTEST_SCREENSHOT="1" if screenshot else "")
    krita_env.update(shell or {})
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 1280x1024x24", *shlex.split(command), "--nosplash"]
    if chroot:
        cmd = ["chroot", str(chroot), "env", "-i", *(f"{k}={v}" for k, v in krita_env.items()), *cmd]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QT_", "XDG_", "PYTHON", "INPAINT_SELFTEST"))}
    env.update(krita_env)
    start = time.monotonic()
    with chroot_mounts(Path(chroot)) if chroot else contextlib.nullcontext():
        # A session of its own, so a timeout ends Xvfb and Krita too, not just the xvfb-run script.
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            log, _ = proc.communicate()
            code, log = -1, log + f"\n[harness] killed after {timeout:.0f} s"
    if chroot:
        shutil.copytree(on_disk(seen_out), out, dirs_exist_ok=True)
    (out / "krita.log").write_text(log)
    return code, log, time.monotonic() - start


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="run the Krita self-test by hand against a running backend")
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--screenshot", action="store_true")
    parser.add_argument("--start-url", default="http://127.0.0.1:7979", help="free port for Start backend; '' skips")
    parser.add_argument("--chroot", type=Path, help="run the Krita of this root (e.g. a trixie chroot: Krita 5.2)")
    args = parser.parse_args()
    code, log, seconds = run_krita(args.url, args.out, start_url=args.start_url, screenshot=args.screenshot,
                                   chroot=args.chroot)
    print("\n".join(line for line in log.splitlines() if "selftest" in line or "Traceback" in line or "Error" in line))
    print(f"krita exit {code} after {seconds:.1f} s")
    sys.exit(code)
