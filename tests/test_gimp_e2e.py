"""The plug-in in real, headless GIMP 3 (Debian chroots built by .ci/setup-gimp.sh), against the real backend.

gimp_plugin/ci/e2e_driver.py runs inside GIMP: it builds images, selects regions, calls the procedure
through the PDB as the menu does and checks the layers; this test starts the backend, runs the driver
and checks the exported before/after PNGs once more with OpenCV.
Locally the test skips without the chroot (or without root); with CI=true a missing GIMP 3.0 fails.
INPAINT_E2E_URL=http://host:port runs it against an already running backend instead of starting one
(for the token scenario, INPAINT_E2E_TOKEN_URL: one started with --token secret-token).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import ROOT, start_server, stop_server
from gimp.fake_backend import FakeBackend

CHROOTS = {  # GIMP version -> (chroot, required in CI)
    "3.0": (Path(os.environ.get("INPAINT_GIMP_CHROOT", "/var/cache/inpaint-ci/trixie")), True),
    "3.2": (Path(os.environ.get("INPAINT_GIMP32_CHROOT", "/var/cache/inpaint-ci/sid")), False),
}
WRAPPER = ROOT / "gimp_plugin" / "ci" / "gimp3-batch.sh"
SCENARIOS = ["basic", "offsets_and_two_regions", "group_and_text_visible", "high_bit_depth_and_grey",
             "no_selection", "backend_down", "token", "sampling_area", "transparent_frame", "variations_and_compare"]
SELECTION = (64, 48, 164, 112)  # of the basic scenario: x0, y0, x1, y1


def _gimp_or_skip(version: str, *tools: str) -> Path:
    chroot, required = CHROOTS[version]
    problem = None
    missing = [t for t in ("gimp-console", "python3", *tools) if not (chroot / "usr/bin" / t).exists()]
    if missing:
        problem = f"no {', '.join(missing)} in the GIMP {version} chroot at {chroot}: run .ci/setup-gimp.sh as root"
    elif os.geteuid() != 0:
        problem = "the GIMP chroot needs root (mount, chroot)"
    if problem and required and os.environ.get("CI") == "true":
        pytest.fail(problem)
    if problem:
        pytest.skip(problem)
    return chroot


def _backend(tmp_path_factory, env: str, *args: str):
    if os.environ.get(env):
        yield os.environ[env]
        return
    server = start_server(tmp_path_factory.mktemp("gimp-e2e"), *args)
    yield server.url
    stop_server(server)


@pytest.fixture(scope="module")
def backend_url(tmp_path_factory):
    yield from _backend(tmp_path_factory, "INPAINT_E2E_URL")


@pytest.fixture(scope="module")
def token_backend_url(tmp_path_factory):
    yield from _backend(tmp_path_factory, "INPAINT_E2E_TOKEN_URL", "--token", "secret-token")


def run_driver(chroot: Path, driver: str, url: str, out: str, *args: str, **env: str) -> str:
    """Run a driver in headless GIMP through the wrapper; returns its output, which is asserted on."""
    env = dict(os.environ, GIMP3_HOME="/var/tmp/inpaint-e2e-home", GIMP3_TIMEOUT="400", **env)
    t = time.time()
    proc = subprocess.run(
        ["bash", str(WRAPPER), str(chroot), str(ROOT), "gimp_plugin/plug-ins", f"gimp_plugin/ci/{driver}",
         f"INPAINT_URL={url}", f"INPAINT_E2E_OUT={out}", *args],
        capture_output=True, text=True, timeout=500, env=env)
    log = proc.stdout + proc.stderr
    print(f"{chroot.name} {driver}: rc={proc.returncode} in {time.time() - t:.1f}s")
    print("\n".join(line for line in log.splitlines() if line.startswith(("[e2e", "[dialog", "Traceback"))))
    assert proc.returncode == 0, f"{driver} in {chroot} failed (rc {proc.returncode}):\n{log[-6000:]}"
    return log


@pytest.mark.gimp
@pytest.mark.slow
@pytest.mark.parametrize("version", list(CHROOTS))
def test_inpaint_selection_in_real_gimp(version, backend_url, token_backend_url):
    chroot = _gimp_or_skip(version)
    out = f"/tmp/inpaint-e2e-{uuid.uuid4().hex[:8]}"  # inside the chroot
    log = run_driver(chroot, "e2e_driver.py", backend_url, out, f"INPAINT_TOKEN_URL={token_backend_url}")
    assert "E2E OK" in log
    for name in SCENARIOS:
        assert f"PASS {name}" in log

    # Independent of GIMP's reading: the exported composites, before and after the fill.
    folder = chroot / out.lstrip("/")
    before = cv2.imread(str(folder / "basic_before.png"))
    after = cv2.imread(str(folder / "basic_after.png"))
    x0, y0, x1, y1 = SELECTION
    inside = np.zeros(before.shape[:2], bool)
    inside[y0:y1, x0:x1] = True
    assert np.array_equal(before[~inside], after[~inside]), "pixels outside the selection changed"
    red = (after[:, :, 2] > 200) & (after[:, :, 1] < 60) & (after[:, :, 0] < 60)
    assert red[inside].sum() == 0 and (before[inside] != after[inside]).any(), "the selection was not filled"
    # The fill continues the gradient around it: compare with the rows just above and below the hole.
    border = np.abs(after[y0:y1, x0:x1].astype(int) - np.linspace(after[y0 - 1, x0:x1], after[y1, x0:x1], y1 - y0))
    assert border.mean() < 8, f"the fill does not match its surroundings (mean difference {border.mean():.1f})"
    shutil.rmtree(folder)  # kept when a check fails, for a look at the PNGs


@pytest.mark.gimp
@pytest.mark.slow
def test_dialog_in_real_gimp(backend_url):
    """The real dialog under Xvfb: the model list comes from the server, OK keeps the choices."""
    chroot = _gimp_or_skip("3.0", "xvfb-run")
    out = f"/tmp/inpaint-dialog-{uuid.uuid4().hex[:8]}"
    log = run_driver(chroot, "dialog_driver.py", backend_url, out, GIMP3_XVFB="1")
    assert "DIALOG OK" in log
    shot = cv2.imread(str(chroot / out.lstrip("/") / "dialog.png"))
    assert shot is not None and shot.shape[0] > 200 and shot.shape[1] > 300
    shutil.rmtree(chroot / out.lstrip("/"))


def _descendants(pid: int) -> list[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found += kids
        todo += kids
    return found


@pytest.mark.gimp
@pytest.mark.slow
def test_killed_plugin_cancels_its_job():
    """GIMP's Cancel kills the plug-in process; the watchdog it left must cancel the backend job."""
    chroot = _gimp_or_skip("3.0")
    fake = FakeBackend()
    env = dict(os.environ, GIMP3_HOME="/var/tmp/inpaint-e2e-home", GIMP3_TIMEOUT="120")
    wrapper = subprocess.Popen(
        ["bash", str(WRAPPER), str(chroot), str(ROOT), "gimp_plugin/plug-ins", "gimp_plugin/ci/e2e_driver.py",
         f"INPAINT_URL={fake.url}", "INPAINT_E2E_ONLY=killed_mid_job"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline = time.time() + 90
        while not any(r[0] == "POST" for r in fake.requests) and time.time() < deadline:
            time.sleep(0.1)
        assert any(r[0] == "POST" for r in fake.requests), "the plug-in never submitted its job"
        plugin = [p for p in _descendants(wrapper.pid)  # python3 .../inpaint-selection.py -gimp ...
                  if any(arg.endswith(b"/inpaint-selection.py")
                         for arg in Path(f"/proc/{p}/cmdline").read_bytes().split(b"\0"))]
        assert len(plugin) == 1, plugin
        os.kill(plugin[0], signal.SIGKILL)  # what gimp_plug_in_close() does on Cancel
        assert fake.cancelled.wait(15), f"the job was not cancelled; requests: {fake.requests}"
        log = wrapper.communicate(timeout=60)[0]
    finally:
        if wrapper.poll() is None:
            wrapper.kill()
        fake.close()
    print(log[-3000:])
    assert ("DELETE", "/api/v1/jobs/job-1", "") in fake.requests
    assert wrapper.returncode == 0 and "PASS killed_mid_job" in log, log[-3000:]
