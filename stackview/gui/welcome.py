"""The first-run panel shown over the empty image viewer: open the bundled sample, or drop images.

The panel floats over the viewer (it is not in the viewer's layout) so the viewer keeps its
size and ranges; the main window hides it for good once an image is displayed. Qt only; the
sample's location comes from :mod:`stackview.paths`.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QEvent, QObject, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from stackview.paths import RESOURCES_DIR

#: the experimental image that ships with stackview (see NOTICE for its source)
SAMPLE_IMAGE = RESOURCES_DIR / "samples" / "ReS2_bilayer_tedgen_sample4.png"


def _format_names() -> str:
    """'TIFF, PNG, JPEG, ...' from the readers' suffixes, so the text follows the readers."""
    from stackview.io.readers import SUFFIXES

    names = {"tif": "TIFF", "tiff": "TIFF", "jpg": "JPEG", "jpeg": "JPEG", "npy": ".npy"}
    out: list[str] = []
    for suffix in SUFFIXES:
        name = names.get(suffix[1:], suffix[1:].upper())
        if name not in out:
            out.append(name)
    return ", ".join(out)


class WelcomePanel(QFrame):
    """A card in the middle of the empty viewer.

    Signals
    -------
    sampleRequested(path)
        The user asked for the bundled sample image.
    openRequested()
        The user asked for the Open dialog.
    """

    sampleRequested = Signal(str)
    openRequested = Signal()

    def __init__(self, parent: QWidget | None = None, sample: Path = SAMPLE_IMAGE) -> None:
        super().__init__(parent)
        self.setObjectName("welcomePanel")
        self.sample = Path(sample)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setMaximumWidth(560)

        title = QLabel("<h2>Welcome to stackview</h2>")
        intro = QLabel(
            "Map the interlayer slip (Da, Db) or twist angle of a 2D bilayer from an "
            "atomic-resolution ADF-STEM image.")
        intro.setWordWrap(True)
        self.drop_text = QLabel(
            f"<b>Drag and drop</b> images or whole folders anywhere on this window, or use "
            f"File → Open. stackview reads {_format_names()}.")
        self.drop_text.setWordWrap(True)
        self.sample_button = QPushButton("Open the sample image (bilayer ReS2)")
        self.sample_button.setObjectName("welcomeSampleButton")
        self.sample_button.setDefault(True)
        self.open_button = QPushButton("Open images…")
        self.sample_button.clicked.connect(lambda: self.sampleRequested.emit(str(self.sample)))
        self.open_button.clicked.connect(self.openRequested)
        if self.sample.is_file():
            steps = ("Then check the pixel size in the Analysis panel, keep the bundled ReS2 "
                     "model and press <b>Run</b>.")
        else:  # a broken or trimmed install: say so instead of failing on click
            self.sample_button.setEnabled(False)
            steps = f"The sample image is missing from this installation ({self.sample})."
        self.steps = QLabel(steps)
        self.steps.setWordWrap(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.sample_button)
        buttons.addWidget(self.open_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(24, 18, 24, 18)
        for widget in (title, intro, self.drop_text):
            layout.addWidget(widget)
        layout.addLayout(buttons)
        layout.addWidget(self.steps)

    def attach(self, host: QWidget) -> None:
        """Float over ``host``, centred, following its size."""
        self.setParent(host)
        self._follower = _CentreOnResize(self, host)
        self._follower.place()
        self.raise_()


class _CentreOnResize(QObject):
    """Keeps the panel centred in its host (event filter on the host's resize)."""

    def __init__(self, panel: QWidget, host: QWidget) -> None:
        super().__init__(panel)
        self.panel, self.host = panel, host
        host.installEventFilter(self)

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 - Qt API
        if obj is self.host and event.type() in (QEvent.Type.Resize, QEvent.Type.Show):
            self.place()
        return False

    def place(self) -> None:
        width = min(self.panel.maximumWidth(), max(self.host.width() - 40, 200))
        height = self.panel.heightForWidth(width)
        if height <= 0:
            height = self.panel.sizeHint().height()
        self.panel.resize(width, height)
        self.panel.move((self.host.width() - width) // 2, (self.host.height() - height) // 3)

