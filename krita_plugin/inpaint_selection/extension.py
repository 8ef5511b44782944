"""Glue run inside Krita: one shared controller, the menu actions, and Krita's shutdown hook."""
from __future__ import annotations

import atexit

from . import krita_api, qt
from .controller import Controller
from .settings import Settings

FILL_ACTION = "inpaint_selection_fill"
COMPARE_ACTION = "inpaint_selection_compare"
CANCEL_ACTION = "inpaint_selection_cancel"

_controller: Controller | None = None


def shared_controller() -> Controller:
    """The one controller of this Krita process; created on the UI thread by the extension's setup()."""
    global _controller
    if _controller is None:
        caller = qt.MainThreadCaller()
        _controller = Controller(Settings.load(krita_api.read_setting), lambda s: s.save(krita_api.write_setting),
                                 caller.post, krita_api.current_document, qt.decode_png)
        _controller.caller = caller  # keep the QObject alive as long as the controller
        krita_api.on_app_closing(_controller.shutdown)
        atexit.register(_controller.server.stop)  # in case Krita exits without the closing signal
    return _controller


class InpaintExtension(krita_api.Extension):
    def setup(self) -> None:
        shared_controller().check_connection()

    def createActions(self, window) -> None:
        controller = shared_controller()
        for action_id, text, slot in (
            (FILL_ACTION, "Inpaint: fill selection", lambda *_: controller.fill()),
            (COMPARE_ACTION, "Inpaint: compare models on selection", lambda *_: controller.fill(compare=True)),
            (CANCEL_ACTION, "Inpaint: cancel", lambda *_: controller.cancel()),
        ):
            krita_api.create_action(window, action_id, text).triggered.connect(slot)
