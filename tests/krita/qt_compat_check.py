"""Builds the real docker and decodes PNGs under whichever PyQt is importable (PyQt5 as in Krita 5, or PyQt6).

    /usr/bin/python3 tests/krita/qt_compat_check.py        # Debian's PyQt5, what Krita 5.1 embeds
    /tmp/pyqt6-venv/bin/python tests/krita/qt_compat_check.py   # PyQt6, what a Qt6 Krita would use

Krita's DockWidget is replaced by a plain QDockWidget and the document by nothing; prints "ok" and exits 0.
"""
import sys
import threading
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "krita_plugin"))

from inpaint_selection import krita_api, messages, png, qt  # noqa: E402

app = qt.QApplication([sys.argv[0], "-platform", "offscreen"])
krita_api.DockWidget = qt.QtWidgets.QDockWidget  # what krita.DockWidget derives from

from inpaint_selection import docker, extension  # noqa: E402
from inpaint_selection.controller import Connection, Controller  # noqa: E402
from inpaint_selection.models import parse_models  # noqa: E402
from inpaint_selection.settings import Settings  # noqa: E402

caller = qt.MainThreadCaller()
controller = Controller(Settings(compare=["diffusion"]), lambda s: None, caller.post, lambda: None, qt.decode_png)
extension._controller = controller
dock = docker.InpaintDocker()

controller.status.connection = Connection.CONNECTED
controller.status.server, controller.status.device = "inpaint-backend test", "CPU (cpu)"
controller.status.default_model, controller.status.models = parse_models({"default": "diffusion", "models": [
    {"id": "diffusion", "kind": "classical", "status": "ready"},
    {"id": "lama", "kind": "learned", "status": "untrained", "reason": "no weights yet"}]})
controller.settings.model = "diffusion"
controller._changed()
items = dock.model_items
assert [items.item(i).text() for i in range(items.rowCount())] == ["diffusion (classical)", "lama (untrained)"]
assert items.item(0).isEnabled() and not items.item(1).isEnabled() and "no weights yet" in items.item(1).toolTip()
assert dock.compare_list.item(0).checkState() == qt.Qt.CheckState.Checked
assert "Connected" in dock.status_label.text()

# The controls scroll: the docker shrinks to far less than their height (a 768 px screen shared with other dockers).
scroll = dock.widget()
assert isinstance(scroll, qt.QScrollArea) and scroll.widgetResizable() and scroll.widget().isAncestorOf(dock.message)
content = scroll.widget().sizeHint().height()
assert dock.minimumSizeHint().height() < 200 < content, (dock.minimumSizeHint().height(), content)
assert scroll.sizeHint().height() >= content  # where there is room, it still asks for all of it
assert dock.minimumSizeHint().width() >= scroll.widget().minimumSizeHint().width()  # no sideways scrolling

dock.fill_button.click()  # no document open
assert dock.message.text() == messages.NO_DOCUMENT, dock.message.text()

# A worker thread's post() must run on this (UI) thread, once events are processed.
ran_on = []
threading.Thread(target=lambda: caller.post(lambda: ran_on.append(threading.current_thread()))).start()
while not ran_on:
    app.processEvents()
assert ran_on == [threading.main_thread()]

values = array("H", [65535, 1, 32768, 40000, 0, 65534, 7, 65535])
img = qt.decode_png(png.encode(values, 2, 1, png.RGBA, 16))
assert (img.width, img.height, img.bits, list(img.samples)) == (2, 1, 16, list(values))
img = qt.decode_png(png.encode(bytes([255, 0, 10, 128, 1, 2, 3, 0]), 2, 1, png.RGBA, 8))
assert img.bits == 8 and img.samples == bytes([255, 0, 10, 128, 1, 2, 3, 0])
print(f"ok (Qt {qt.QtCore.qVersion()})")
