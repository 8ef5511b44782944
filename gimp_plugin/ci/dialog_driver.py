# Builds the plug-in's real dialog inside GIMP 3 under Xvfb and checks it, without anyone clicking:
#   GIMP3_XVFB=1 gimp3-batch.sh CHROOT PROJECT gimp_plugin/plug-ins gimp_plugin/ci/dialog_driver.py \
#       INPAINT_URL=http://127.0.0.1:PORT INPAINT_E2E_OUT=/tmp/dialog
# The dialog code is loaded from the plug-in file itself (its Gimp.main only runs as __main__) and given
# the registered procedure's config, as GIMP does for a menu click; OK is pressed by a timer.
import importlib.util
import os
import sys
import time

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("GimpUi", "3.0")
gi.require_version("Gtk", "3.0")
gi.require_version("Gdk", "3.0")
from gi.repository import Gdk, Gimp, GimpUi, GLib, Gtk  # noqa: E402

PLUGIN = "/project/gimp_plugin/plug-ins/inpaint-selection"
URL = os.environ["INPAINT_URL"]
OUT = os.environ.get("INPAINT_E2E_OUT", "/tmp/inpaint-dialog")
T0 = time.time()


def log(*args):
    print(f"[dialog {time.time() - T0:5.2f}s]", *args, flush=True)


def widgets(root):
    yield root
    if isinstance(root, Gtk.Container):
        for child in root.get_children():
            yield from widgets(child)


def screenshot(window, path):
    Gtk.main_iteration_do(False)
    while Gtk.events_pending():
        Gtk.main_iteration()
    gdk = window.get_window()
    shot = Gdk.pixbuf_get_from_window(gdk, 0, 0, gdk.get_width(), gdk.get_height())
    shot.savev(path, "png", [], [])


sys.path.insert(0, PLUGIN)
spec = importlib.util.spec_from_file_location("inpaint_selection_ui", f"{PLUGIN}/inpaint-selection.py")
ui = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ui)
GimpUi.init("inpaint-dialog-check")
os.makedirs(OUT, exist_ok=True)

proc = Gimp.get_pdb().lookup_procedure(ui.PROC)
config = proc.create_config()
config.set_property("url", URL)
config.set_property("grow", 7)
dialog = ui.build_dialog(proc, config)
dialog.show_all()

combo = next(w for w in widgets(dialog) if isinstance(w, Gtk.ComboBoxText))
listed = [row[0] for row in combo.get_model()]
labels = [w.get_text() for w in widgets(dialog) if isinstance(w, Gtk.Label)]
log("models listed:", listed)
assert "diffusion" in listed, listed
assert any("ready model" in t for t in labels), labels
combo.set_active_id("diffusion")
assert config.get_property("model") == "diffusion", config.get_property("model")
names = {label for label in labels if label}
for expected in ("Source", "Grow (px)", "Feather (px)", "Server URL", "Token", "Sample from", "Sample width (px)",
                 "Sample channel", "Variations", "Seed (-1 = random)", "Compare: tick models"):
    assert any(expected in label.replace("_", "") for label in names), (expected, sorted(names))
ticks = {w.get_label(): w for w in widgets(dialog) if isinstance(w, Gtk.CheckButton) and w.get_label() in listed}
log("compare ticks:", sorted(ticks))
assert set(ticks) == set(listed), (sorted(ticks), listed)  # one tick per ready model
for model in ("patchmatch", "diffusion"):
    ticks[model].set_active(True)  # a user's ticks
assert sorted(ui.settings_from(config).models_to_compare()) == ["diffusion", "patchmatch"], config.get_property("compare")
ticks["patchmatch"].set_active(False)
assert ui.settings_from(config).models_to_compare() == ["diffusion"], config.get_property("compare")
screenshot(dialog, f"{OUT}/dialog.png")

GLib.timeout_add(300, lambda: dialog.response(Gtk.ResponseType.OK) and False)
assert dialog.run() is True  # GimpProcedureDialog.run: TRUE for OK
settings = ui.settings_from(config).checked()
log("settings after OK:", settings)
assert (settings.model, settings.grow, settings.url) == ("diffusion", 7, URL)
dialog.destroy()

# A dead server: the dialog still opens, keeps what was typed and says why the list is empty.
config.set_property("url", "http://127.0.0.1:9")
dialog = ui.build_dialog(proc, config)
dialog.show_all()
status = [w.get_text() for w in widgets(dialog) if isinstance(w, Gtk.Label) and "not running" in w.get_text()]
combo = next(w for w in widgets(dialog) if isinstance(w, Gtk.ComboBoxText))
log("dead server:", status)
assert status and combo.get_child().get_text() == "diffusion"
screenshot(dialog, f"{OUT}/dialog_server_down.png")
dialog.destroy()
log("DIALOG OK")
