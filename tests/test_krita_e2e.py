"""End to end in the real Krita: Krita 5 under Xvfb, the plugin installed as `install-plugins --krita` does,
the real backend, and a CI-only self-test plugin (tests/krita/inpaint_selftest) that acts as the user.

One Krita run (module fixture) plays every scenario; the tests below check what it recorded.
Skipped when Krita or xvfb-run is missing, except on CI (CI=true), where that is a failure.
KRITA_E2E_BACKEND_URL points the run at another server instead of starting the backend, e.g. nothing
(backend down) or tests/krita/stub_backend.py answering wrong images: the tests must then fail.
Every test runs three times: in this system's Krita (Debian 12: 5.1); in the Krita 5.2 of the Debian trixie chroot
that .ci/setup-gimp.sh builds and .ci/setup-krita.sh adds Krita to (KRITA_E2E_CHROOT names another root), a run
skipped, saying why, when that Krita is not there or the tests do not run as root; and (venv) in this system's
Krita started from a shell with an activated virtual environment by the command `install-plugins --krita` prints
there (test_a_plain_start_from_a_venv_... shows that a plain `krita` from that shell loads no plugin).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from conftest import ROOT, free_port, start_server, stop_server

from backend.install import krita as installer

sys.path.insert(0, str(ROOT / "tests" / "krita"))
import harness  # noqa: E402

pytestmark = pytest.mark.krita

HARD, SOFT = (200, 150, 110, 80), (60, 60, 50, 40)  # the u8 scenario's selection (fill_u8 in the self-test)
SMALL = (60, 40, 40, 30)  # the u16, f32 and compare scenarios' selection


TRIXIE = Path(os.environ.get("KRITA_E2E_CHROOT") or os.environ.get("INPAINT_GIMP_CHROOT") or "/var/cache/inpaint-ci/trixie")


def require_krita(chroot: Path | None = None) -> None:
    if chroot is not None:
        if not (chroot / "usr" / "bin" / "krita").is_file() or not (chroot / "usr" / "bin" / "xvfb-run").is_file():
            pytest.skip(f"no Krita 5.2 in {chroot}: .ci/setup-krita.sh installs it there (as root, after .ci/setup-gimp.sh)")
        if os.geteuid() != 0:
            pytest.skip(f"running the Krita in {chroot} needs root (chroot, mount)")
        return
    missing = harness.missing_tools()
    if not missing:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{', '.join(missing)} missing on CI: .ci/setup-krita.sh should have installed it")
    pytest.skip(f"{', '.join(missing)} not installed (apt-get install krita python3-pyqt5 xvfb xauth)")


def activated_venv(tmp: Path) -> dict[str, str]:
    """What `/usr/bin/python3 -m venv DIR && . DIR/bin/activate` changes in a shell on the system's PATH."""
    venv = tmp / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    return {"VIRTUAL_ENV": str(venv), "PATH": f"{venv / 'bin'}{os.pathsep}{harness.SYSTEM_PATH}"}


@dataclass
class Run:
    code: int
    log: str
    seconds: float
    out: Path
    report: dict
    listing: dict | None  # GET /api/v1/models of the backend the run used
    chroot: Path | None  # the root whose Krita ran; None: this system's

    def scenario(self, key: str) -> dict:
        assert key in self.report.get("scenarios", {}), f"scenario {key} did not run:\n{self.tail()}"
        return self.report["scenarios"][key]

    def tail(self) -> str:
        lines = [line for line in self.log.splitlines() if "selftest" in line or "Traceback" in line or "Error" in line]
        return "\n".join(lines[-40:])


@pytest.fixture(scope="module", params=["system", "trixie", "venv"])
def krita(request, tmp_path_factory) -> Run:
    chroot = TRIXIE if request.param == "trixie" else None
    require_krita(chroot)
    tmp = tmp_path_factory.mktemp("krita_e2e")
    shell, command = None, "krita"
    if request.param == "venv":
        shell = activated_venv(tmp)
        command = installer.start_command(shell)  # what install-plugins tells the user to type in that shell
    url, server = os.environ.get("KRITA_E2E_BACKEND_URL"), None
    if not url:
        (tmp / "models").mkdir()
        # A checkpoint that cannot load: the docker must list it greyed, with the reason.
        (tmp / "models" / "sketchy.json").write_text(json.dumps({"method": "no-such-method", "description": "broken"}))
        server = start_server(tmp)
        url = server.url
    try:
        try:
            listing = requests.get(url + "/api/v1/models", timeout=5).json()
        except (requests.RequestException, ValueError):
            listing = None
        out = tmp / "out"
        # In a chroot the backend's Python is out of Krita's reach: no Start backend scenario there.
        start_url = "" if chroot else f"http://127.0.0.1:{free_port()}"
        code, log, seconds = harness.run_krita(url, out, down_url=f"http://127.0.0.1:{free_port()}",
                                               start_url=start_url, chroot=chroot, shell=shell, command=command)
    finally:
        if server is not None:
            stop_server(server)
    report_path = out / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() else {}
    print(f"Krita ({request.param}) ran {seconds:.1f} s, exit {code}")
    return Run(code, log, seconds, out, report, listing, chroot)


# -- reading what the self-test dumped -------------------------------------------------------------
def canvas(run: Run, key: str, name: str) -> np.ndarray:
    """A dumped canvas-sized buffer: float RGBA 0..1 (H, W, 4), or the 8-bit selection (H, W)."""
    s = run.scenario(key)
    w, h, depth = s["width"], s["height"], s["depth"]
    data = (run.out / f"{key}_{name}.bin").read_bytes()
    if name == "mask":
        return np.frombuffer(data, np.uint8).reshape(h, w)
    dtype = {"U8": np.uint8, "U16": np.uint16, "F16": np.float16, "F32": np.float32}[depth]
    arr = np.frombuffer(data, dtype).reshape(h, w, 4).astype(np.float64)
    if depth == "U8":
        return arr[:, :, [2, 1, 0, 3]] / 255
    if depth == "U16":
        return arr[:, :, [2, 1, 0, 3]] / 65535
    return arr


def ring(shape, rect, width=6) -> np.ndarray:
    x, y, w, h = rect
    out = np.zeros(shape, bool)
    out[max(0, y - width):y + h + width, max(0, x - width):x + w + width] = True
    out[y:y + h, x:x + w] = False
    return out


def check_fill(run: Run, key: str, layer: str, hard: tuple, soft: tuple | None = None) -> None:
    """Transparent outside the selection, opaque (or half, where half selected) inside, changed and plausible."""
    mask, base = canvas(run, key, "mask"), canvas(run, key, "base_before")
    new = canvas(run, key, layer)
    tol = 1 / 255 + 1e-6
    assert (run.out / f"{key}_base_before.bin").read_bytes() == (run.out / f"{key}_base_after.bin").read_bytes(), \
        "the source layer changed"
    assert new[mask == 0, 3].max() == 0, "the layer is not transparent outside the selection"
    x, y, w, h = hard
    assert (mask[y:y + h, x:x + w] == 255).all()
    inside = new[y:y + h, x:x + w]
    assert inside[:, :, 3].min() >= 1 - tol, "the fill is not opaque inside the selection"
    change = np.abs(inside[:, :, :3] - base[y:y + h, x:x + w, :3]).mean()
    # An echoed source gives 0; the default exemplar engine rebuilds the hidden checker pattern
    # so well that a genuine fill changes the pixels by only ~0.026.
    assert change > 0.01, f"the fill is a copy of the source (mean change {change:.4f})"
    around = base[ring(mask.shape, hard)][:, :3].mean(axis=0)
    off = np.abs(inside[:, :, :3].reshape(-1, 3).mean(axis=0) - around)
    fill_colour = inside[:, :, :3].mean(axis=(0, 1))
    assert off.max() < 0.12, f"the fill's colour {fill_colour} is far from its surroundings {around}"
    if soft is not None:
        x, y, w, h = soft
        alpha = new[y:y + h, x:x + w, 3]
        assert np.abs(alpha - 128 / 255).max() <= 2 / 255 + 1e-6, "the soft selection did not stay soft"


def default_model(run: Run) -> str:
    return (run.listing or {}).get("default") or "diffusion"


# -- the tests -------------------------------------------------------------------------------------
def test_krita_loaded_the_plugin_and_ran_every_scenario(krita):
    assert krita.code == 0 and "error" not in krita.report, f"Krita exit {krita.code}:\n{krita.tail()}"
    assert krita.report["actions"] == {"inpaint_selection_fill": True, "inpaint_selection_compare": True,
                                       "inpaint_selection_cancel": True}
    assert krita.report["shortcut"] == "Ctrl+Alt+Shift+F"
    expected = {"empty", "down", "start", "u16", "f32", "visible", "compare", "u8", "sample_whole", "sample_sides",
                "sample_painted", "sample_mask", "transparent", "variations"} - ({"start"} if krita.chroot else set())
    assert set(krita.report["scenarios"]) == expected


def test_docker_connects_and_lists_models_ready_first_with_untrained_greyed(krita):
    docker = krita.report.get("docker", {})
    assert docker.get("connection") == "connected", krita.tail()
    assert "Connected" in docker["status_text"] and "cpu" in docker["status_text"]
    shown = docker["models"]
    enabled = [e for _, e, _ in shown]
    assert enabled == sorted(enabled, reverse=True), "ready models must come first"
    listing = {m["id"]: m for m in krita.listing["models"]}
    assert len(shown) == len(listing)
    for text, is_enabled, tooltip in shown:
        entry = listing[text.split(" (")[0]]
        assert is_enabled == (entry["status"] == "ready")
        if not is_enabled:
            assert entry["reason"] and entry["reason"] in tooltip
    assert not all(enabled), "the run's backend lists a model that cannot run (sketchy.json): it must show, greyed"


def test_fill_adds_one_layer_named_after_the_model_above_the_source(krita):
    s = krita.scenario("u8")
    assert s["ok"], s["message"]
    name = f"Inpaint: {default_model(krita)}"
    assert s["tree"] == [[0, "Background", "paintlayer"], [0, "base", "paintlayer"], [0, name, "paintlayer"]]
    assert s["new_layers"] == [name]
    assert s["active_after"] == "base", "the source layer must stay active"
    assert s["docker_message"].startswith(f"Added {name}")


def test_fill_pixels_transparent_outside_filled_inside_soft_stays_soft(krita):
    check_fill(krita, "u8", "layer0", HARD, SOFT)


def test_fill_reads_only_the_crop_the_selection_needs(krita):
    s = krita.scenario("u8")
    x, y, w, h = s["crop"]
    assert w * h < s["width"] * s["height"]
    for sx, sy, sw, sh in (HARD, SOFT):
        assert x <= sx and y <= sy and sx + sw <= x + w and sy + sh <= y + h
    x, y, w, h = krita.scenario("u16")["crop"]
    assert w * h < 0.6 * 160 * 112


def test_undo_removes_the_result_in_one_step_and_redo_brings_it_back(krita):
    s = krita.scenario("u8")
    assert s["after_undo"] == s["tree"][:2]
    assert s["after_redo"] == s["tree"]


@pytest.mark.parametrize("key", ["u16", "f32"])
def test_deep_documents(krita, key):
    s = krita.scenario(key)
    assert s["ok"], s["message"]
    assert s["depth"] == key.upper()
    assert s["new_layers"] == [f"Inpaint: {default_model(krita)}"]
    check_fill(krita, key, "layer0", SMALL)


def test_fill_from_the_visible_image_goes_above_the_active_layer(krita):
    s = krita.scenario("visible")
    assert s["ok"], s["message"]
    assert [name for _, name, _ in s["tree"]] == ["Background", "base", "blank", f"Inpaint: {default_model(krita)}"]
    check_fill(krita, "visible", "layer0", SMALL)  # read from the empty active layer, it could not match


def test_compare_adds_a_group_with_one_layer_per_ready_model(krita):
    s = krita.scenario("compare")
    assert s["ok"], s["message"]
    ready = [m["id"] for m in krita.listing["models"] if m["status"] == "ready"]
    assert sorted(s["compare_setting"]) == sorted(ready)  # every ready model ticked, in the docker's order
    group = f"Inpaint compare ({len(ready)} models)"
    assert s["tree"][:3] == [[0, "Background", "paintlayer"], [0, "base", "paintlayer"], [0, group, "grouplayer"]]
    assert sorted(name for depth, name, kind in s["tree"][3:]) == sorted(f"Inpaint: {m}" for m in ready)
    assert all(depth == 1 and kind == "paintlayer" for depth, _, kind in s["tree"][3:])
    for i in range(len(ready)):
        check_fill(krita, "compare", f"layer{i}", SMALL)


def _reds(run: Run, key: str) -> int:
    """Red pixels (the colour above and below the sampling scenario's selection) in its fill."""
    new = canvas(run, key, "layer0")
    x, y, w, h = SMALL
    px = new[y:y + h, x:x + w, :3].reshape(-1, 3)
    return int(((px[:, 0] > 0.6) & (px[:, 1] < 0.3) & (px[:, 2] < 0.3)).sum())


def test_sampling_area_keeps_red_outside_it_out_of_the_fill(krita):
    for key in ("sample_whole", "sample_sides", "sample_painted", "sample_mask"):
        s = krita.scenario(key)
        assert s["ok"], s["message"]
        assert s["new_layers"] == [f"Inpaint: {default_model(krita)}"]
    if default_model(krita) not in ("patchmatch", "auto"):
        pytest.skip("the sampling area applies to engines that copy patches; this backend's default does not")
    assert _reds(krita, "sample_whole") > 50, "the control: from the whole layer, red is copied in"
    assert _reds(krita, "sample_sides") == 0, "Sample from: Sides copied red from above or below"
    assert _reds(krita, "sample_painted") == 0, "Sample from: a painted layer copied red from outside it"
    assert _reds(krita, "sample_mask") == 0, "Sample from: a selection mask copied red from outside it"


def test_fill_transparent_fills_a_frame_on_all_four_sides(krita):
    s = krita.scenario("transparent")
    assert s["ok"], s["message"]
    assert s["setting"] is True and s["new_layers"] == [f"Inpaint: {default_model(krita)}"]
    base, new = canvas(krita, "transparent", "base_before"), canvas(krita, "transparent", "layer0")
    f = s["frame"]
    clear = base[:, :, 3] == 0
    assert clear[:f].all() and clear[-f:].all() and clear[:, :f].all() and clear[:, -f:].all()
    assert (new[clear, 3] >= 1 - 1 / 255).all(), "a transparent pixel was left unfilled"
    assert new[~clear, 3].max() == 0, "the layer covers the opaque part too"
    inside = base[~clear, :3]
    lo, hi = inside.min(axis=0) - 0.05, inside.max(axis=0) + 0.05
    # Each side continues the picture's edge next to it (the picture is a gradient: its far side looks different).
    sides = {"top": (new[:f, f:-f], base[f:2 * f, f:-f]), "bottom": (new[-f:, f:-f], base[-2 * f:-f, f:-f]),
             "left": (new[f:-f, :f], base[f:-f, f:2 * f]), "right": (new[f:-f, -f:], base[f:-f, -2 * f:-f])}
    for side, (filled, edge) in sides.items():
        rgb = filled[..., :3].reshape(-1, 3)
        assert ((rgb >= lo) & (rgb <= hi)).all(), f"a {side} frame pixel has a colour the picture does not have"
        off = np.abs(rgb.mean(axis=0) - edge[..., :3].reshape(-1, 3).mean(axis=0)).max()
        assert off < 0.12, f"the {side} side's colour is {off:.2f} off the picture's edge beside it"


def test_variations_land_as_layers_with_distinct_seeds_in_one_group(krita):
    s = krita.scenario("variations")
    assert s["ok"], s["message"]
    assert s["setting"] == 3
    model = default_model(krita)
    assert s["tree"][:3] == [[0, "Background", "paintlayer"], [0, "base", "paintlayer"],
                             [0, "Inpaint variations (3 seeds)", "grouplayer"]]
    seeds = [int(name.rsplit(" ", 1)[1]) for name in s["new_layers"]]
    assert s["new_layers"] == [f"Inpaint: {model} seed {seed}" for seed in seeds]
    assert len(set(seeds)) == 3 and sorted(seeds) == list(range(min(seeds), min(seeds) + 3))
    assert all(depth == 1 and kind == "paintlayer" for depth, _, kind in s["tree"][3:])
    for i in range(3):
        check_fill(krita, "variations", f"layer{i}", SMALL)


def test_nothing_selected_is_refused_politely(krita):
    s = krita.scenario("empty")
    assert not s["ok"] and s["message"].startswith("Nothing is selected")
    assert s["tree"] == [[0, "Background", "paintlayer"], [0, "base", "paintlayer"]]


def test_backend_down_is_explained_and_start_is_offered(krita):
    s = krita.scenario("down")
    assert not s["ok"] and s["message"].startswith("The backend is not running at http://127.0.0.1:")
    assert s["connection"] == "down" and s["start_button"]
    assert s["tree"] == [[0, "Background", "paintlayer"], [0, "base", "paintlayer"]]


def test_start_backend_button_starts_a_backend_that_stops_with_krita(krita):
    if krita.chroot:
        pytest.skip("the backend's Python is not inside the chroot")
    s = krita.scenario("start")
    assert s["button_visible"] and s["running_after_click"]
    assert s["connection"] == "connected", s.get("log")
    assert s["fill_ok"], s["fill_message"]
    assert s["new_layers"] == [f"Inpaint: {default_model(krita)}"]
    assert s["running_before_quit"] and not s["running_after_quit"] and s["after_quit"] == "not_running"


def test_a_plain_start_from_a_venv_loads_no_python_plugin_as_install_plugins_warns(tmp_path):
    """The venv run's control: from the same shell, plain `krita` starts a Krita whose Python lacks PyQt5, so no
    plugin (not even the self-test, which would end Krita) loads; the harness kills it."""
    require_krita()
    shell = activated_venv(tmp_path)
    [note] = installer.python_environment_notes(shell)
    assert "virtual environment's" in note and note.endswith(installer.start_command(shell))
    code, log, _ = harness.run_krita("http://127.0.0.1:9", tmp_path / "out", shell=shell, timeout=40)
    assert "No module named 'PyQt5'" in log, log[-3000:]
    assert code == -1 and not (tmp_path / "out" / "report.json").exists()


def test_docker_and_png_decoder_under_kritas_pyqt():
    """The docker's widgets and qt.decode_png under Debian's Python and PyQt5, the ones Krita 5.1 embeds
    (tests/krita/qt_compat_check.py; it passes under PyQt6 6.11 too, see krita_plugin/README.md)."""
    require_krita()
    res = subprocess.run(["/usr/bin/python3", str(ROOT / "tests" / "krita" / "qt_compat_check.py")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith("ok (Qt 5."), res.stdout + res.stderr
