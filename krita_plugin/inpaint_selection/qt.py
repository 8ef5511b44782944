"""The only module that imports Qt: PyQt5 in Krita 5.x, PyQt6 in a Qt6 Krita.

Everything else uses the names below. Enums are spelled fully scoped
(QImage.Format.Format_ARGB32), which PyQt5 5.15 accepts and PyQt6 requires.
"""
from __future__ import annotations

import sys
from array import array

# Use the binding Krita already loaded: importing the other one would pull a second Qt into the process.
if "PyQt6" in sys.modules and "PyQt5" not in sys.modules:
    from PyQt6 import QtCore, QtGui, QtWidgets
else:
    try:
        from PyQt5 import QtCore, QtGui, QtWidgets
    except ImportError:
        from PyQt6 import QtCore, QtGui, QtWidgets

from .pixels import Rgba

QT_MAJOR = int(QtCore.qVersion().split(".")[0])

Qt = QtCore.Qt
QObject = QtCore.QObject
QTimer = QtCore.QTimer
QByteArray = QtCore.QByteArray
QSize = QtCore.QSize
Signal = QtCore.pyqtSignal
Slot = QtCore.pyqtSlot
QImage = QtGui.QImage
QKeySequence = QtGui.QKeySequence
QStandardItem = QtGui.QStandardItem
QStandardItemModel = QtGui.QStandardItemModel
QApplication = QtWidgets.QApplication
QWidget = QtWidgets.QWidget
QVBoxLayout = QtWidgets.QVBoxLayout
QHBoxLayout = QtWidgets.QHBoxLayout
QFormLayout = QtWidgets.QFormLayout
QLabel = QtWidgets.QLabel
QLineEdit = QtWidgets.QLineEdit
QPushButton = QtWidgets.QPushButton
QComboBox = QtWidgets.QComboBox
QSpinBox = QtWidgets.QSpinBox
QProgressBar = QtWidgets.QProgressBar
QListWidget = QtWidgets.QListWidget
QListWidgetItem = QtWidgets.QListWidgetItem
QGroupBox = QtWidgets.QGroupBox
QCheckBox = QtWidgets.QCheckBox
QScrollArea = QtWidgets.QScrollArea
QSizePolicy = QtWidgets.QSizePolicy

_DEEP = {QImage.Format.Format_RGBA64, QImage.Format.Format_RGBX64, QImage.Format.Format_RGBA64_Premultiplied,
         QImage.Format.Format_Grayscale16}


def decode_png(data: bytes) -> Rgba:
    """PNG bytes -> straight-alpha RGBA, keeping 16 bit when the file has it."""
    image = QImage.fromData(data, "PNG")
    if image.isNull():
        raise ValueError("the result is not a readable PNG")
    deep = image.format() in _DEEP
    image = image.convertToFormat(QImage.Format.Format_RGBA64 if deep else QImage.Format.Format_RGBA8888)
    width, height, row = image.width(), image.height(), image.width() * (8 if deep else 4)
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    raw = bytes(ptr)
    stride = image.bytesPerLine()
    if stride != row:
        raw = b"".join(raw[y * stride:y * stride + row] for y in range(height))
    return Rgba(width, height, 16 if deep else 8, array("H", raw) if deep else raw)


class MainThreadCaller(QObject):
    """post(fn) from any thread runs fn on the thread that created this object (Krita's UI thread)."""

    _call = Signal(object)

    def __init__(self):
        super().__init__()
        self._call.connect(self._run)  # auto connection: queued when emitted from a worker thread

    @Slot(object)
    def _run(self, fn) -> None:
        fn()

    def post(self, fn) -> None:
        self._call.emit(fn)
