"""CI-only Krita plugin: drives the real Inpaint Selection plugin as a user would and records what happened.

Idle unless INPAINT_SELFTEST_OUT is set. Each scenario creates a document, selects,
triggers the plugin's action or clicks its docker's buttons, waits for it to finish,
and dumps layer names and raw pixels into OUT; tests/test_krita_e2e.py does the checks.
Documents stay open (closing one from Python and then creating the next crashed
Krita 5.1.5), and Krita is ended with os._exit (QApplication.exit crashed it too).
"""
import json
import os
import struct
import sys
import time
import traceback
from array import array

from krita import Extension, Krita, Selection
from PyQt5.QtCore import Qt, QTimer
from PyQt5.QtWidgets import QApplication, QCheckBox, QComboBox, QLabel, QListWidget, QPushButton, QSpinBox

OUT = os.environ.get("INPAINT_SELFTEST_OUT", "")
DOWN_URL = os.environ.get("INPAINT_SELFTEST_DOWN_URL", "http://127.0.0.1:9")
START_URL = os.environ.get("INPAINT_SELFTEST_START_URL", "")  # a free port for the docker's Start backend button
SCREENSHOT = os.environ.get("INPAINT_SELFTEST_SCREENSHOT") == "1"
WATCHDOG_MS = 240_000
T0 = time.monotonic()


def log(message):
    text = f"[selftest {time.monotonic() - T0:6.2f}s] {message}"
    print(text.encode("ascii", "backslashreplace").decode(), flush=True)  # Krita's stdout may be ASCII


def pattern(w, h, depth):
    """A gradient with a fine checker on blue: a fill of it is easy to tell from the original."""
    px = []
    for y in range(h):
        for x in range(w):
            px.append((x / w, y / h, 0.35 + 0.3 * ((x // 4 + y // 4) % 2), 1.0))
    if depth == "U8":
        return bytes(int(v * 255 + 0.5) for r, g, b, a in px for v in (b, g, r, a))
    if depth == "U16":
        return array("H", (int(v * 65535 + 0.5) for r, g, b, a in px for v in (b, g, r, a))).tobytes()
    if depth == "F32":
        return array("f", (v for p in px for v in p)).tobytes()
    return struct.pack(f"<{len(px) * 4}e", *(v for p in px for v in p))


class Wait:
    def __init__(self, done, seconds, what, required=True):
        self.done, self.deadline, self.what, self.required = done, time.monotonic() + seconds, what, required


class SelfTest(Extension):
    def __init__(self, parent):
        super().__init__(parent)
        self.report = {"scenarios": {}}
        self.finished = None
        self.waiting = None

    def setup(self):
        if not OUT:
            return
        Krita.instance().setBatchmode(True)  # no dialogs: they would hang a headless run
        Krita.instance().notifier().windowCreated.connect(lambda: QTimer.singleShot(500, self.start))
        QTimer.singleShot(WATCHDOG_MS, lambda: self.finish(2, "watchdog: the self-test did not end in time"))

    def createActions(self, window):
        pass

    # -- the driver: scenarios are generators that yield Wait conditions ----------------------------
    def start(self):
        import inpaint_selection.extension as plugin  # the real plugin, as Krita loaded it

        self.plugin = plugin
        self.controller = plugin.shared_controller()
        self.controller.on_finished(self._on_finished)
        self.report["version"] = Krita.instance().version()
        self.report["actions"] = {a: Krita.instance().action(a) is not None for a in
                                  (plugin.FILL_ACTION, plugin.COMPARE_ACTION, plugin.CANCEL_ACTION)}
        # Set from inpaint_selection.action, which the installer puts in Krita's actions folder.
        self.report["shortcut"] = Krita.instance().action(plugin.FILL_ACTION).shortcut().toString()
        log(f"window created; Krita {self.report['version']}; actions {self.report['actions']}")
        self.steps = self.scenarios()
        self.timer = QTimer()
        self.timer.timeout.connect(self.tick)
        self.timer.start(40)

    def tick(self):
        try:
            if self.waiting is not None and not self.waiting.done():
                if time.monotonic() < self.waiting.deadline:
                    return
                if self.waiting.required:
                    raise TimeoutError(f"timed out waiting for {self.waiting.what}")
                if self.waiting.what != "a pause":
                    log(f"gave up waiting for {self.waiting.what}")
            self.waiting = next(self.steps)
        except StopIteration:
            self.finish(0, "all scenarios ran")
        except Exception:
            self.report["error"] = traceback.format_exc()
            self.finish(1, self.report["error"])

    def finish(self, code, why):
        log(f"exit {code}: {why}")
        try:
            self.report["elapsed_s"] = round(time.monotonic() - T0, 2)
            with open(os.path.join(OUT, "report.json"), "w") as f:
                json.dump(self.report, f, indent=1)
            self.controller.shutdown()
        finally:
            sys.stdout.flush()
            os._exit(code)

    def _on_finished(self, ok, message):
        self.finished = (ok, message)

    # -- helpers ---------------------------------------------------------------------------------
    def pause(self, seconds):
        return Wait(lambda: False, seconds, "a pause", required=False)

    def docker(self):
        for dock in Krita.instance().dockers():
            if dock.objectName() == "inpaint_selection_docker":
                return dock
        raise RuntimeError("the Inpaint Selection docker is not in the window")

    def new_document(self, name, w, h, depth="U8"):
        k = Krita.instance()
        doc = k.createDocument(w, h, name, "RGBA", depth, "", 72.0)
        k.activeWindow().addView(doc)  # makes it the active document, as opening it would
        base = doc.createNode("base", "paintlayer")
        doc.rootNode().addChildNode(base, None)
        base.setPixelData(pattern(w, h, depth), 0, 0, w, h)
        doc.setActiveNode(base)
        doc.refreshProjection()
        doc.waitForDone()
        return doc, base

    def active_is(self, doc, node):
        # Krita 5.2 applies setActiveNode only once events run: ask again until it sticks.
        if doc.activeNode() is not None and doc.activeNode().name() == node.name():
            return True
        doc.setActiveNode(node)
        return False

    def select(self, doc, rects):
        sel = Selection()
        for x, y, w, h, value in rects:
            part = Selection()
            part.select(x, y, w, h, value)
            sel.add(part)
        doc.setSelection(sel)
        doc.waitForDone()

    def trigger(self, how):
        self.finished = None
        if how == "action":
            Krita.instance().action(self.plugin.FILL_ACTION).trigger()  # what the menu item and shortcut do
        else:
            self.docker().findChild(QPushButton, how).click()
        return Wait(lambda: self.finished is not None, 60, f"the plugin to finish ({how})")

    def tree(self, doc):
        def walk(node, depth):
            out = []
            for child in node.childNodes():
                if child.type() != "selectionmask":
                    out.append([depth, child.name(), child.type()])
                    out.extend(walk(child, depth + 1))
            return out
        return walk(doc.rootNode(), 0)

    def dump(self, key, doc, base, scenario, before):
        w, h = doc.width(), doc.height()
        files = {"base_before": before, "base_after": bytes(base.pixelData(0, 0, w, h))}
        layers = []
        for i, node in enumerate(self.new_layers(doc)):
            files[f"layer{i}"] = bytes(node.pixelData(0, 0, w, h))
            layers.append(node.name())
        sel = doc.selection()
        files["mask"] = bytes(sel.pixelData(0, 0, w, h)) if sel is not None else bytes(w * h)
        for name, data in files.items():
            with open(os.path.join(OUT, f"{key}_{name}.bin"), "wb") as f:
                f.write(data)
        scenario.update(width=w, height=h, depth=doc.colorDepth(), tree=self.tree(doc), new_layers=layers,
                        crop=self.controller.status.last_crop, files=sorted(files))

    def new_layers(self, doc):
        found = []

        def walk(node):
            for child in node.childNodes():
                if child.type() == "paintlayer" and child.name().startswith("Inpaint: "):
                    found.append(child)
                walk(child)
        walk(doc.rootNode())
        return found

    def record(self, key, **facts):
        self.report["scenarios"].setdefault(key, {}).update(facts)
        log(f"{key}: {facts}")

    # -- the scenarios ---------------------------------------------------------------------------
    def scenarios(self):
        c = self.controller
        dock = self.docker()
        dock.show()
        dock.raise_()
        yield Wait(lambda: c.status.connection.value not in ("unknown", "checking"), 30, "the docker to connect")
        combo = dock.findChild(QComboBox, "model_combo")
        items = combo.model()
        self.report["docker"] = {
            "connection": c.status.connection.value,
            "status_text": dock.findChild(QLabel, "status_label").text(),
            "models": [[items.item(i).text(), items.item(i).isEnabled(), items.item(i).toolTip()]
                       for i in range(items.rowCount())],
        }
        log(f"docker: {self.report['docker']}")

        yield from self.refused_without_selection()
        yield from self.backend_down()
        yield from self.press_start_backend()
        yield from self.fill_depth("u16", "U16")
        yield from self.fill_depth("f32", "F32")
        yield from self.fill_visible()
        yield from self.compare()
        yield from self.sampling()
        yield from self.fill_transparent()
        yield from self.variations()
        yield from self.fill_with_started_backend()
        yield from self.fill_u8()

    def refused_without_selection(self):
        doc, base = self.new_document("empty", 96, 64)
        yield Wait(lambda: self.active_is(doc, base), 5, "the base layer to be active")
        yield self.trigger("action")
        self.record("empty", ok=self.finished[0], message=self.finished[1], tree=self.tree(doc))

    def backend_down(self):
        c = self.controller
        url = c.settings.url
        doc, base = self.new_document("down", 96, 64)
        self.select(doc, [(30, 20, 30, 20, 255)])
        yield Wait(lambda: self.active_is(doc, base), 5, "the base layer to be active")
        c.update_settings(url=DOWN_URL)
        yield Wait(lambda: c.status.connection.value != "checking", 10, "the connection check")
        start_visible = self.docker().findChild(QPushButton, "start_button").isVisible()
        yield self.trigger("fill_button")
        self.record("down", ok=self.finished[0], message=self.finished[1], tree=self.tree(doc),
                    connection=c.status.connection.value, start_button=start_visible)
        c.update_settings(url=url)
        yield Wait(lambda: c.status.connection.value != "checking", 30, "the reconnection", required=False)

    def press_start_backend(self):
        """Point the docker at a free port and press Start backend; it boots while the other scenarios run."""
        if not START_URL:
            return
        c = self.controller
        url = c.settings.url
        c.update_settings(url=START_URL)
        yield Wait(lambda: c.status.connection.value == "down", 10, "nothing to answer at the new URL", required=False)
        button = self.docker().findChild(QPushButton, "start_button")
        visible = button.isVisible()
        button.click()
        self.record("start", button_visible=visible, running_after_click=c.server.running)
        c.update_settings(url=url)
        yield Wait(lambda: c.status.connection.value != "checking", 30, "the reconnection", required=False)

    def fill_with_started_backend(self):
        if not START_URL:
            return
        from inpaint_selection.client import BackendError, Client

        c = self.controller
        url = c.settings.url
        doc, base = self.new_document("start", 96, 64)
        self.select(doc, [(30, 20, 30, 20, 255)])
        yield Wait(lambda: self.active_is(doc, base), 5, "the base layer to be active")
        c.update_settings(url=START_URL)
        yield Wait(lambda: c.status.connection.value == "connected", 90, "the started backend", required=False)
        connection = c.status.connection.value
        yield self.trigger("fill_button")
        filled, running = self.finished, c.server.running
        c.shutdown()  # what Krita's applicationClosing signal runs
        try:
            Client(START_URL, timeout=2).health()
            after = "answers"
        except BackendError as e:
            after = e.code
        self.record("start", connection=connection, fill_ok=filled[0], fill_message=filled[1],
                    running_before_quit=running, running_after_quit=c.server.running, after_quit=after,
                    new_layers=[n.name() for n in self.new_layers(doc)], log=c.server.log_tail())
        c.update_settings(url=url)
        yield Wait(lambda: c.status.connection.value != "checking", 30, "the reconnection", required=False)

    def fill_depth(self, key, depth):
        doc, base = self.new_document(key, 160, 112, depth)
        self.select(doc, [(60, 40, 40, 30, 255)])
        yield Wait(lambda: self.active_is(doc, base), 5, "the base layer to be active")
        before = bytes(base.pixelData(0, 0, doc.width(), doc.height()))
        yield self.trigger("action")
        self.record(key, ok=self.finished[0], message=self.finished[1])
        self.dump(key, doc, base, self.report["scenarios"][key], before)

    def fill_visible(self):
        """The active layer is empty, so only reading the visible image gives the fill something to go on."""
        from inpaint_selection.settings import Source

        doc, base = self.new_document("visible", 160, 112)
        blank = doc.createNode("blank", "paintlayer")
        doc.rootNode().addChildNode(blank, base)
        self.select(doc, [(60, 40, 40, 30, 255)])
        yield Wait(lambda: self.active_is(doc, blank), 5, "the blank layer to be active")
        before = bytes(base.pixelData(0, 0, doc.width(), doc.height()))
        self.controller.update_settings(source=Source.VISIBLE)
        yield self.trigger("action")
        self.controller.update_settings(source=Source.LAYER)
        self.record("visible", ok=self.finished[0], message=self.finished[1])
        self.dump("visible", doc, base, self.report["scenarios"]["visible"], before)

    def compare(self):
        doc, base = self.new_document("compare", 160, 112)
        self.select(doc, [(60, 40, 40, 30, 255)])
        yield Wait(lambda: self.active_is(doc, base), 5, "the base layer to be active")
        ticks = self.docker().findChild(QListWidget, "compare_list")
        ticked = []
        for i in range(ticks.count()):
            item = ticks.item(i)
            if item.flags() & Qt.ItemIsEnabled:  # ready models only
                item.setCheckState(Qt.Checked)  # a user's tick
                ticked.append(item.text())
        before = bytes(base.pixelData(0, 0, doc.width(), doc.height()))
        yield self.trigger("compare_button")
        self.record("compare", ok=self.finished[0], message=self.finished[1], ticked=ticked,
                    compare_setting=list(self.controller.settings.compare))
        self.dump("compare", doc, base, self.report["scenarios"]["compare"], before)

    def sampling(self):
        """Red above and below the selection, the pattern beside it: filled from the whole layer (the control),
        from the sides only, and from a painted layer covering the sides: red must be kept out of the last two."""
        from inpaint_selection.settings import SampleFrom

        c = self.controller
        w, h = 160, 112
        doc, base = self.new_document("sampling", w, h)
        red = bytes((0, 0, 255, 255)) * (w * 40)  # B, G, R, A
        base.setPixelData(red, 0, 0, w, 40)
        base.setPixelData(bytes((0, 0, 255, 255)) * (w * (h - 70)), 0, 70, w, h - 70)
        area = doc.createNode("sample area", "paintlayer")
        doc.rootNode().addChildNode(area, base)
        area.setVisible(False)
        for x in (20, 100):
            area.setPixelData(bytes((0, 255, 0, 255)) * (40 * 30), x, 40, 40, 30)
        mask = doc.createSelectionMask("sample mask")  # the same area as a selection mask, on the hidden layer
        beside = Selection()
        beside.select(20, 40, 120, 30, 255)
        mask.setSelection(beside)
        area.addChildNode(mask, None)
        doc.refreshProjection()
        self.select(doc, [(60, 40, 40, 30, 255)])
        yield Wait(lambda: self.active_is(doc, base), 5, "the base layer to be active")
        before = bytes(base.pixelData(0, 0, w, h))
        for key, sample, node in (("sample_whole", SampleFrom.WHOLE, ""), ("sample_sides", SampleFrom.SIDES, ""),
                                  ("sample_painted", SampleFrom.PAINTED, "sample area"),
                                  ("sample_mask", SampleFrom.PAINTED, "sample mask")):
            c.update_settings(sample=sample, sample_width=30, sample_node=node)
            yield self.trigger("fill_button")
            self.record(key, ok=self.finished[0], message=self.finished[1])
            self.dump(key, doc, base, self.report["scenarios"][key], before)
            for node in self.new_layers(doc):
                node.remove()
            doc.refreshProjection()
        c.update_settings(sample=SampleFrom.WHOLE, sample_node="")

    def fill_transparent(self):
        """A layer with a transparent frame on all four sides and nothing selected: the frame is filled."""
        c = self.controller
        w, h, frame = 128, 96, 12
        doc, base = self.new_document("transparent", w, h)
        base.setPixelData(bytes(w * h * 4), 0, 0, w, h)
        base.setPixelData(pattern(w - 2 * frame, h - 2 * frame, "U8"), frame, frame, w - 2 * frame, h - 2 * frame)
        doc.refreshProjection()
        doc.setSelection(Selection())  # nothing selected
        doc.waitForDone()
        yield Wait(lambda: self.active_is(doc, base), 5, "the base layer to be active")
        before = bytes(base.pixelData(0, 0, w, h))
        self.docker().findChild(QCheckBox, "transparent_check").setChecked(True)  # a user's tick
        setting = c.settings.fill_transparent
        yield self.trigger("fill_button")
        self.docker().findChild(QCheckBox, "transparent_check").setChecked(False)
        self.record("transparent", ok=self.finished[0], message=self.finished[1], setting=setting, frame=frame)
        self.dump("transparent", doc, base, self.report["scenarios"]["transparent"], before)

    def variations(self):
        c = self.controller
        doc, base = self.new_document("variations", 160, 112)
        self.select(doc, [(60, 40, 40, 30, 255)])
        yield Wait(lambda: self.active_is(doc, base), 5, "the base layer to be active")
        before = bytes(base.pixelData(0, 0, doc.width(), doc.height()))
        self.docker().findChild(QSpinBox, "variations_spin").setValue(3)  # a user's choice; the seed stays random
        setting = c.settings.variations
        yield self.trigger("fill_button")
        self.docker().findChild(QSpinBox, "variations_spin").setValue(1)
        self.record("variations", ok=self.finished[0], message=self.finished[1], setting=setting)
        self.dump("variations", doc, base, self.report["scenarios"]["variations"], before)

    def fill_u8(self):
        doc, base = self.new_document("u8", 512, 384)
        # A hard rectangle and a half-selected one: the soft one must come back half transparent.
        self.select(doc, [(200, 150, 110, 80, 255), (60, 60, 50, 40, 128)])
        yield Wait(lambda: self.active_is(doc, base), 5, "the base layer to be active")
        before = bytes(base.pixelData(0, 0, doc.width(), doc.height()))
        yield self.trigger("action")
        yield self.pause(0.3)  # let Krita process the layer's arrival before asking what is active
        self.record("u8", ok=self.finished[0], message=self.finished[1], active_after=doc.activeNode().name(),
                    docker_message=self.docker().findChild(QLabel, "message_label").text())
        self.dump("u8", doc, base, self.report["scenarios"]["u8"], before)
        if SCREENSHOT:
            shown = {}
            for dock in Krita.instance().dockers():  # room for the whole docker beside the Layers docker
                if dock.objectName() in ("inpaint_selection_docker", "KisLayerBox"):
                    shown[dock.objectName()] = dock
                else:
                    dock.hide()
            window = Krita.instance().activeWindow().qwindow()
            window.setGeometry(0, 0, 1280, 1024)
            if len(shown) == 2:  # the docker scrolls, so Krita may give it little height: give it what it asks for
                docker = shown["inpaint_selection_docker"]
                window.resizeDocks([shown["KisLayerBox"], docker], [170, docker.sizeHint().height()], Qt.Vertical)
            yield self.pause(1.5)  # let the window repaint
            QApplication.primaryScreen().grabWindow(0).save(os.path.join(OUT, "screenshot.png"))
        Krita.instance().action("edit_undo").trigger()
        yield Wait(lambda: not self.new_layers(doc), 5, "undo to remove the layer", required=False)
        self.record("u8", after_undo=self.tree(doc))
        Krita.instance().action("edit_redo").trigger()
        yield Wait(lambda: bool(self.new_layers(doc)), 5, "redo to bring the layer back", required=False)
        self.record("u8", after_redo=self.tree(doc))


Krita.instance().addExtension(SelfTest(Krita.instance()))
