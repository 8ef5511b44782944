"""The only module that talks to Krita's Python API (libkis); tests replace what it returns.

Everything about documents goes through KritaDocument, which implements
fill.DocumentAccess: read the selection and pixels of a crop, add result layers.
"""
from __future__ import annotations

from .geometry import Rect
from .messages import Refused
from .settings import GROUP, Source

try:
    import krita
except ImportError:  # imported by unit tests or the zip builder, outside Krita
    krita = None

# A folder named "krita" on sys.path (tests/krita/ when pytest runs) imports as an empty namespace package.
IN_KRITA = hasattr(krita, "Krita")
Extension = krita.Extension if IN_KRITA else object
DockWidget = krita.DockWidget if IN_KRITA else object

DOCKER_ID = "inpaint_selection_docker"


def app():
    return krita.Krita.instance()


def register(extension_cls, docker_cls) -> None:
    instance = app()
    instance.addExtension(extension_cls(instance))
    base = krita.DockWidgetFactoryBase
    right = base.DockRight if hasattr(base, "DockRight") else base.DockPosition.DockRight  # PyQt6: scoped only
    instance.addDockWidgetFactory(krita.DockWidgetFactory(DOCKER_ID, right, docker_cls))


def read_setting(key: str, default: str = "") -> str:
    return app().readSetting(GROUP, key, default)


def write_setting(key: str, value: str) -> None:
    app().writeSetting(GROUP, key, value)


def on_app_closing(callback) -> None:
    app().notifier().applicationClosing.connect(callback)


def create_action(window, action_id: str, text: str):
    """A window action under Tools > Scripts; its default shortcut comes from inpaint_selection.action."""
    return window.createAction(action_id, text, "tools/scripts")


def current_document() -> KritaDocument | None:
    doc = app().activeDocument()
    return KritaDocument(doc) if doc is not None else None


def _layer_of(node):
    """The layer a (possibly mask) node belongs to: filling a selection mask means filling its layer."""
    while node is not None and node.type().endswith("mask"):
        node = node.parentNode()
    return node


class KritaDocument:
    """One document, and the layer that was active when the fill was asked for (the source)."""

    def __init__(self, doc):
        self._doc = doc
        # May be None right after a document opens (Krita 5.2 sets it once events run).
        self._source = _layer_of(doc.activeNode())

    def size(self) -> tuple[int, int]:
        return self._doc.width(), self._doc.height()

    def color(self) -> tuple[str, str]:
        return self._doc.colorModel(), self._doc.colorDepth()

    def selection_bounds(self) -> Rect | None:
        sel = self._doc.selection()  # a copy of the global selection, or None
        if sel is None or sel.width() <= 0 or sel.height() <= 0:
            return None
        return Rect(sel.x(), sel.y(), sel.width(), sel.height())

    def selection_mask(self, rect: Rect) -> bytes:
        sel = self._doc.selection()
        if sel is None:
            return bytes(rect.area)
        return bytes(sel.pixelData(rect.x, rect.y, rect.w, rect.h))

    def read_pixels(self, rect: Rect, source: Source) -> bytes:
        self._doc.waitForDone()  # pending strokes would otherwise be missing from the read
        if source is Source.VISIBLE:
            return bytes(self._doc.pixelData(rect.x, rect.y, rect.w, rect.h))
        if self._source is None:
            raise Refused("No layer is active. Click the layer to fill from in the Layers docker.")
        if self._source.type() == "paintlayer":
            return bytes(self._source.pixelData(rect.x, rect.y, rect.w, rect.h))
        return bytes(self._source.projectionPixelData(rect.x, rect.y, rect.w, rect.h))

    def read_node(self, name: str, rect: Rect) -> tuple[str, bytes] | None:
        node = self._doc.nodeByName(name)
        if node is None:
            return None
        if node.type().endswith("mask"):  # selection and transparency masks hold one grey byte per pixel
            return "mask", bytes(node.pixelData(rect.x, rect.y, rect.w, rect.h))
        if node.type() == "paintlayer":
            return "layer", bytes(node.pixelData(rect.x, rect.y, rect.w, rect.h))
        return "layer", bytes(node.projectionPixelData(rect.x, rect.y, rect.w, rect.h))

    def add_layers(self, layers, group: str | None) -> None:
        """Add paint layers directly above the source (or on top), or one group holding them.

        Pixels are written before a node joins the image, so the whole result is one
        undoable "add layer" step and no paint stroke lands on an existing layer.
        """
        doc = self._doc
        above = self._source
        parent = above.parentNode() if above is not None else doc.rootNode()
        nodes = []
        for layer in layers:
            node = doc.createNode(layer.name, "paintlayer")
            r = layer.rect
            node.setPixelData(layer.data, r.x, r.y, r.w, r.h)
            nodes.append(node)
        if group is None:
            for node in nodes:
                parent.addChildNode(node, above)
                above = node
        else:
            holder = doc.createGroupLayer(group)
            parent.addChildNode(holder, above)
            below = None
            for node in nodes:
                holder.addChildNode(node, below)
                below = node
        if self._source is not None:
            # Krita activates an added layer once events run; re-activate the source after that,
            # so the next fill reads the source and not this result.
            from .qt import QTimer  # here, not at the top: unit tests import this module without Qt

            source = self._source
            QTimer.singleShot(0, lambda: doc.setActiveNode(source))
        doc.refreshProjection()

    def is_open(self) -> bool:
        return any(d == self._doc for d in app().documents())
