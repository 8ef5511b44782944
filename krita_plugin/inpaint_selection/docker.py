"""The docker: connection, model picker, fill controls, compare list, progress and the last message.

It only shows the shared controller's Status and forwards user input to it;
every docker of every window shows the same state.
"""
from __future__ import annotations

from . import krita_api
from .controller import Connection, Status
from .extension import shared_controller
from .qt import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSize,
    QSpinBox,
    QStandardItem,
    QStandardItemModel,
    Qt,
    QVBoxLayout,
    QWidget,
)
from .settings import MAX_SEED, MAX_VARIATIONS, Blend, SampleFrom, Source

SAMPLE_CHOICES = [("Whole layer", SampleFrom.WHOLE), ("Around the selection", SampleFrom.AROUND),
                  ("Sides", SampleFrom.SIDES), ("Above and below", SampleFrom.ABOVE_BELOW),
                  ("A painted area", SampleFrom.PAINTED)]

SHORTCUT_HINT = "Ctrl+Alt+Shift+F"
_COLOURS = {Connection.CONNECTED: "#3a3", Connection.DOWN: "#c33", Connection.ERROR: "#c33",
            Connection.CHECKING: "#aa3", Connection.STARTING: "#aa3", Connection.UNKNOWN: "#888"}


class _Scroll(QScrollArea):
    """Scrolls the docker's content vertically only: never narrower than the content, but it may be given any
    height (down to a few lines) and asks for all of it where there is room (QScrollArea's own hint stops at
    about 24 lines)."""

    def _extra(self) -> int:
        return self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()

    def sizeHint(self):
        content = self.widget().sizeHint()
        return QSize(content.width() + self._extra(), content.height() + 2 * self.frameWidth())

    def minimumSizeHint(self):
        return QSize(self.widget().minimumSizeHint().width() + self._extra(), super().minimumSizeHint().height())


def _spin(lo: int, hi: int, value: int, tip: str, special: str = "") -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSuffix(" px")
    box.setValue(value)
    box.setToolTip(tip)
    if special:
        box.setSpecialValueText(special)  # shown at the minimum
    return box


def _row(*widgets) -> QWidget:
    """Widgets side by side in one form row, the first one stretching."""
    row = QWidget()
    box = QHBoxLayout(row)
    box.setContentsMargins(0, 0, 0, 0)
    for i, widget in enumerate(widgets):
        box.addWidget(widget, 1 if i == 0 else 0)
    return row


class InpaintDocker(krita_api.DockWidget):
    def __init__(self):
        super().__init__()
        self.setWindowTitle("Inpaint Selection")
        self.controller = c = shared_controller()
        s = c.settings
        root = QWidget()
        layout = QVBoxLayout(root)

        server = QGroupBox("Backend")
        form = QFormLayout(server)
        self.url = QLineEdit(s.url)
        self.url.setObjectName("url_edit")
        self.token = QLineEdit(s.token)
        self.token.setEchoMode(QLineEdit.EchoMode.Password)
        self.token.setPlaceholderText("only if the server was started with --token")
        self.status_label = QLabel()
        self.status_label.setObjectName("status_label")
        self.status_label.setWordWrap(True)
        self.refresh_button = QPushButton("Refresh")
        self.start_button = QPushButton("Start backend")
        self.start_button.setObjectName("start_button")
        self.start_button.setToolTip("Start the locally installed backend; it stops when Krita quits")
        buttons = QHBoxLayout()
        buttons.addWidget(self.refresh_button)
        buttons.addWidget(self.start_button)
        form.addRow("Server", self.url)
        form.addRow("Token", self.token)
        form.addRow(self.status_label)
        form.addRow(buttons)
        layout.addWidget(server)

        params = QGroupBox("Fill")
        form = QFormLayout(params)
        self.model_combo = QComboBox()
        self.model_combo.setObjectName("model_combo")
        self.model_items = QStandardItemModel(self.model_combo)
        self.model_combo.setModel(self.model_items)
        self.source_combo = QComboBox()
        self.source_combo.addItem("Active layer", Source.LAYER.value)
        self.source_combo.addItem("Visible image", Source.VISIBLE.value)
        self.source_combo.setCurrentIndex(self.source_combo.findData(s.source.value))
        self.grow = _spin(-200, 500, s.grow, "Grow the selection by this much before filling (negative shrinks)")
        self.feather = _spin(0, 500, s.feather, "Soft edge added around the selection")
        self.context = _spin(-1, 4096, -1 if s.context is None else s.context,
                             "Surrounding image the model sees; auto scales with the selection", "auto")
        self.blend_combo = QComboBox()
        self.blend_combo.addItem("Alpha + colour match", Blend.ALPHA.value)
        self.blend_combo.addItem("Poisson (seamless)", Blend.POISSON.value)
        self.blend_combo.setCurrentIndex(self.blend_combo.findData(s.blend.value))
        self.sample_combo = QComboBox()
        self.sample_combo.setObjectName("sample_combo")
        self.sample_combo.setToolTip("Where the fill may copy from (engines that copy patches, e.g. patchmatch)")
        for text, choice in SAMPLE_CHOICES:
            self.sample_combo.addItem(text, choice.value)
        self.sample_combo.setCurrentIndex(self.sample_combo.findData(s.sample.value))
        self.sample_width = _spin(1, 10000, s.sample_width, "How far from the selection the fill may copy from")
        self.sample_width.setObjectName("sample_width")
        self.sample_node = QLineEdit(s.sample_node)
        self.sample_node.setObjectName("sample_node")
        self.sample_node.setPlaceholderText("layer or selection mask name")
        self.sample_node.setToolTip("Its pixels more than half opaque (a mask: more than half selected) are the "
                                    "area the fill copies from")
        self.transparent_check = QCheckBox("Fill transparent areas")
        self.transparent_check.setObjectName("transparent_check")
        self.transparent_check.setChecked(s.fill_transparent)
        self.transparent_check.setToolTip("Also fill the layer's fully transparent pixels, e.g. after enlarging "
                                          "the canvas; no selection needed")
        self.variations = QSpinBox()
        self.variations.setObjectName("variations_spin")
        self.variations.setRange(1, MAX_VARIATIONS)
        self.variations.setValue(s.variations)
        self.variations.setToolTip("Fills with seeds seed, seed + 1, ...: one layer each, in a group")
        self.seed = QSpinBox()
        self.seed.setObjectName("seed_spin")
        self.seed.setRange(-1, MAX_SEED - MAX_VARIATIONS)
        self.seed.setValue(min(s.seed, MAX_SEED - MAX_VARIATIONS))
        self.seed.setSpecialValueText("random")
        self.seed.setToolTip("The first variation's seed: the same seed gives the same fill")
        self.fill_button = QPushButton("Fill selection")
        self.fill_button.setObjectName("fill_button")
        self.fill_button.setToolTip(f"Fill the selection as a new layer ({SHORTCUT_HINT})")
        form.addRow("Model", self.model_combo)
        form.addRow("Read from", self.source_combo)
        form.addRow("Grow", self.grow)
        form.addRow("Feather", self.feather)
        form.addRow("Context", self.context)
        form.addRow("Blend", self.blend_combo)
        form.addRow("Sample from", _row(self.sample_combo, self.sample_width))
        form.addRow("Sample layer", self.sample_node)
        form.addRow(self.transparent_check)
        form.addRow("Variations", _row(self.variations, QLabel("seed"), self.seed))
        form.addRow(self.fill_button)
        layout.addWidget(params)

        compare = QGroupBox("Compare models")
        box = QVBoxLayout(compare)
        self.compare_list = QListWidget()
        self.compare_list.setObjectName("compare_list")
        self.compare_list.setMaximumHeight(72)
        self.compare_button = QPushButton("Compare ticked models")
        self.compare_button.setObjectName("compare_button")
        self.compare_button.setToolTip("One layer per model, in a group: keep the best, delete the rest")
        box.addWidget(self.compare_list)
        box.addWidget(self.compare_button)
        layout.addWidget(compare)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setObjectName("progress")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancel_button")
        row = QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.message = QLabel()
        self.message.setObjectName("message_label")
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.message)
        layout.addStretch(1)
        # Scrolls rather than growing past the window: on a 768 px screen, beside other dockers, the
        # controls are taller than the space Krita gives the docker, and the last message fell off the bottom.
        scroll = _Scroll()
        scroll.setObjectName("docker_scroll")
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setWidget(root)
        self.setWidget(scroll)

        self.url.editingFinished.connect(lambda: c.update_settings(url=self.url.text().strip()))
        self.token.editingFinished.connect(lambda: c.update_settings(token=self.token.text()))
        self.refresh_button.clicked.connect(lambda *_: c.check_connection())
        self.start_button.clicked.connect(lambda *_: c.start_server())
        self.model_combo.activated.connect(self._model_picked)
        self.source_combo.activated.connect(lambda i: c.update_settings(source=Source(self.source_combo.itemData(i))))
        self.blend_combo.activated.connect(lambda i: c.update_settings(blend=Blend(self.blend_combo.itemData(i))))
        self.grow.valueChanged.connect(lambda v: c.update_settings(grow=v))
        self.feather.valueChanged.connect(lambda v: c.update_settings(feather=v))
        self.context.valueChanged.connect(lambda v: c.update_settings(context=None if v < 0 else v))
        self.sample_combo.activated.connect(
            lambda i: c.update_settings(sample=SampleFrom(self.sample_combo.itemData(i))))
        self.sample_width.valueChanged.connect(lambda v: c.update_settings(sample_width=v))
        self.sample_node.editingFinished.connect(lambda: c.update_settings(sample_node=self.sample_node.text().strip()))
        self.transparent_check.toggled.connect(lambda on: c.update_settings(fill_transparent=bool(on)))
        self.variations.valueChanged.connect(lambda v: c.update_settings(variations=v))
        self.seed.valueChanged.connect(lambda v: c.update_settings(seed=v))
        self.compare_list.itemChanged.connect(self._compare_ticked)
        self.fill_button.clicked.connect(lambda *_: c.fill())
        self.compare_button.clicked.connect(lambda *_: c.fill(compare=True))
        self.cancel_button.clicked.connect(lambda *_: c.cancel())
        self._model_ids: list[str] = []
        c.subscribe(self._show)

    def canvasChanged(self, canvas) -> None:  # required by Krita's DockWidget; the docker is not per canvas
        pass

    def _model_picked(self, index: int) -> None:
        if 0 <= index < len(self._model_ids):
            self.controller.update_settings(model=self._model_ids[index])

    def _compare_ticked(self, _item) -> None:
        ticked = [self.compare_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.compare_list.count())
                  if self.compare_list.item(i).checkState() == Qt.CheckState.Checked]
        self.controller.update_settings(compare=ticked)

    def _show(self, status: Status) -> None:
        try:
            self._render(status)
        except RuntimeError:  # this docker's window was closed: Qt deleted the widgets
            self.controller.unsubscribe(self._show)

    def _render(self, status: Status) -> None:
        s = self.controller.settings
        colour = _COLOURS[status.connection]
        text = {Connection.CONNECTED: f"Connected: {status.server} on {status.device}",
                Connection.CHECKING: "Connecting...", Connection.UNKNOWN: "Not checked yet"}.get(
            status.connection, status.server)
        self.status_label.setText(f'<span style="color:{colour}">\u25cf</span> {text}')
        self.start_button.setVisible(status.can_start)

        ids = [m.id for m in status.models]
        if ids != self._model_ids or self.model_combo.count() != len(ids):
            self._model_ids = ids
            self.model_items.clear()
            self.compare_list.blockSignals(True)
            self.compare_list.clear()
            for m in status.models:
                item = QStandardItem(m.label)
                item.setToolTip(m.tooltip)
                item.setEnabled(m.ready)  # untrained/broken: greyed, reason in the tooltip
                self.model_items.appendRow(item)
                entry = QListWidgetItem(m.label)
                entry.setData(Qt.ItemDataRole.UserRole, m.id)
                entry.setToolTip(m.tooltip)
                ready = Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled
                entry.setFlags(ready if m.ready else Qt.ItemFlag.NoItemFlags)
                entry.setCheckState(Qt.CheckState.Checked if m.id in s.compare else Qt.CheckState.Unchecked)
                self.compare_list.addItem(entry)
            self.compare_list.blockSignals(False)
        if s.model in ids:
            self.model_combo.setCurrentIndex(ids.index(s.model))

        sample = s.sample
        self.sample_width.setEnabled(sample in (SampleFrom.AROUND, SampleFrom.SIDES, SampleFrom.ABOVE_BELOW))
        self.sample_node.setEnabled(sample is SampleFrom.PAINTED)
        idle = not status.busy
        self.fill_button.setEnabled(idle)
        self.compare_button.setEnabled(idle)
        self.cancel_button.setEnabled(status.busy)
        self.progress.setValue(int(status.progress * 1000) if status.busy else 0)
        self.progress.setFormat(status.progress_text if status.busy else "idle")
        if status.error:
            self.message.setStyleSheet("color: #d44")
            self.message.setText(status.error)
        else:
            self.message.setStyleSheet("")
            self.message.setText(status.info)
