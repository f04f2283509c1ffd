"""The main window: viewer in the centre, panels in docks, every job on the background engine.

The window holds the open images, the current image's calibration and its analysis results;
panels emit signals, the window starts :class:`stackview.engine.qt.Job` workers around the
functions of :mod:`stackview.gui.tasks` and shows what they return. A failed job becomes a
message box (one sentence, details on demand); the window never blocks on a job.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QFrame,
    QLabel,
    QMainWindow,
    QProgressBar,
    QScrollArea,
)

from stackview.analysis.trust import POOR_WINDOW_NCC
from stackview.engine.qt import Job
from stackview.gui import settings as prefs
from stackview.gui import tasks
from stackview.gui.batch_panel import BatchPanel, ImageList
from stackview.gui.errors import show_error
from stackview.gui.inspector import WindowInspector
from stackview.gui.pel_plot import PelPlot
from stackview.gui.plots import FftView, ProfileView
from stackview.gui.results_panel import DEVIATION, NCC, UNCERTAINTY, ResultsPanel, trust_text
from stackview.gui.spm_panel import SpmPanel
from stackview.gui.viewer import ImageViewer
from stackview.gui.welcome import WelcomePanel
from stackview.io.readers import SUFFIXES

log = logging.getLogger(__name__)

#: file types the Open dialog offers (the readers' suffixes)
IMAGE_FILTER = ("Images (" + " ".join(f"*{suffix}" for suffix in sorted(SUFFIXES)) + ")"
                ";;All files (*)")


def image_files(paths) -> list[Path]:
    """Files from a mix of files and folders (folders: their supported images, sorted)."""
    from stackview.io.readers import SUFFIXES

    out: list[Path] = []
    for item in paths:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIXES)
        else:
            out.append(p)
    return out


def landscape_label(landscape) -> str:
    """'MoS2, meV/cell, chgnet+d3' — what the PEL panel's title says about a landscape
    ('; magnitudes qualitative' where the library has caveats, e.g. an overbinding potential)."""
    from stackview.pel.landscape import caveats

    calc = landscape.provenance.get("calculator") or {}
    name = calc.get("name") if isinstance(calc, dict) else str(calc)
    text = f"{landscape.material.name}, meV/cell" + (f", {name}" if name else "")
    if caveats(landscape):
        text += "; magnitudes qualitative"
    return text


def result_cell(result):
    """The cell (rows a, b in px) an analysis calibrated with: its lattice reading's, else its
    calibration's (None when neither read the lattice)."""
    best = getattr(getattr(result, "lattice", None), "best", None)
    if best is not None:
        return np.stack([best.a_px, best.b_px])
    return getattr(result.calibration, "lattice_px", None)


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("stackview")
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self.last_error = None
        self.jobs: set[Job] = set()
        self.analysis_job: Job | None = None
        self.images: dict[str, tasks.OpenedImage] = {}
        self.results: dict[str, object] = {}
        self.landscapes: dict[str, object] = {}  # path -> PEL shown under the slips, or None
        self.batch: tasks.BatchResult | None = None
        self.current_path: str | None = None
        # (path, cell) -> the FFT reflections that cell indexes (the FFT panel circles them)
        self.reflections: dict[tuple, object] = {}
        self._default_layout_pending = False

        self.viewer = ImageViewer()
        self.setCentralWidget(self.viewer)
        self.image_list = ImageList()
        self.spm = SpmPanel()
        self.results_panel = ResultsPanel()
        self.fft = FftView()
        self.profile = ProfileView()
        self.inspector = WindowInspector()
        self.pel = PelPlot()
        self.batch_panel = BatchPanel()
        self.docks = {}
        left = Qt.DockWidgetArea.LeftDockWidgetArea
        right = Qt.DockWidgetArea.RightDockWidgetArea
        bottom = Qt.DockWidgetArea.BottomDockWidgetArea
        for name, title, widget, area in (
            ("images", "Images", self.image_list, left),
            ("analysis", "Analysis", self.spm, left),
            ("results", "Results", self.results_panel, right),
            ("fft", "FFT", self.fft, right),
            ("profile", "Line profile", self.profile, right),
            ("pel", "PEL", self.pel, right),
            ("inspector", "Window", self.inspector, bottom),
            ("batch", "Batch statistics", self.batch_panel, bottom),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock_{name}")
            if name in ("analysis", "results"):  # tall forms: scroll, never squeeze their text
                scroll = QScrollArea()
                scroll.setWidgetResizable(True)
                scroll.setFrameShape(QFrame.Shape.NoFrame)
                scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
                scroll.setWidget(widget)
                # as wide as the form needs (and its vertical scroll bar): it scrolls down only
                scroll.setMinimumWidth(widget.minimumSizeHint().width()
                                       + scroll.verticalScrollBar().sizeHint().width())
                widget = scroll
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[name] = dock
        self.tabifyDockWidget(self.docks["fft"], self.docks["profile"])
        self.tabifyDockWidget(self.docks["profile"], self.docks["pel"])
        self.tabifyDockWidget(self.docks["inspector"], self.docks["batch"])
        self.docks["fft"].raise_()
        self.docks["inspector"].raise_()
        # the side panels run the window's full height (their forms are tall) and the bottom
        # panels sit under the image only
        self.setCorner(Qt.Corner.BottomLeftCorner, left)
        self.setCorner(Qt.Corner.BottomRightCorner, right)

        self.status_text = QLabel("Drop ADF-STEM images or folders here.")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(250)
        self.progress.hide()
        self.statusBar().addWidget(self.status_text, 1)
        self.statusBar().addPermanentWidget(self.progress)

        self.welcome = WelcomePanel()
        self.welcome.attach(self.viewer)  # floats over the empty viewer until an image shows
        self.welcome.sampleRequested.connect(lambda path: self.open_paths([path]))
        self.welcome.openRequested.connect(self.open_dialog)

        self._build_menus()
        self._connect()
        self._load_models_and_prefs()

    # --- set-up ------------------------------------------------------------------------------
    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        for text, slot, key in (
            ("&Open…", self.open_dialog, QKeySequence.StandardKey.Open),
            ("Open &folder…", self.open_folder_dialog, None),
            ("Open &model bundle…", self.open_model_dialog, None),
        ):
            action = QAction(text, self)
            if key is not None:
                action.setShortcut(key)
            action.triggered.connect(slot)
            file_menu.addAction(action)
        self.recent_menu = file_menu.addMenu("Open &recent")
        file_menu.addSeparator()
        for text, slot in (
            ("&Export results (maps, figure PNG, summary)…", lambda: self.export_dialog("png")),
            ("Export results with an SVG figure…", lambda: self.export_dialog("svg")),
            ("Export &atomic model of the picked window…", self.export_atoms_dialog),
            ("Export &batch (all images + stats.csv)…", self.export_batch_dialog),
        ):
            action = QAction(text, self)
            action.triggered.connect(slot)
            file_menu.addAction(action)
        file_menu.addSeparator()
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence.StandardKey.Quit)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        view_menu = self.menuBar().addMenu("&View")
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())
        tools_menu = self.menuBar().addMenu("&Tools")
        self.wizard_action = tools_menu.addAction("Train a model for a new material…")
        self.wizard_action.triggered.connect(lambda: self.open_training_wizard())
        help_menu = self.menuBar().addMenu("&Help")
        self.about_action = help_menu.addAction("&About stackview")
        self.about_action.triggered.connect(lambda: self.show_about())
        self._refresh_recent()

    def show_about(self):
        from stackview.gui.about import AboutDialog

        dialog = AboutDialog(self)
        dialog.open()  # not exec(): jobs and tests go on while it is shown
        return dialog

    def open_training_wizard(self, project_dir=None):
        """Show the model-training wizard (asks for a project folder unless given)."""
        from stackview.gui.wizard.wizard import TrainingWizard, open_training_wizard

        if project_dir is None:
            wizard = open_training_wizard(self)
        else:
            wizard = TrainingWizard(project_dir, self)
            wizard.show()
        if wizard is not None:
            wizard.modelRegistered.connect(self.model_registered)
        return wizard

    def model_registered(self, path: str) -> None:
        """A model was added to the user library: refresh the lists and select it."""
        from pathlib import Path

        from stackview.materials import list_materials
        from stackview.models.registry import list_models

        self.model_entries = list_models()
        name = Path(path).name
        current = next((str(e.path) for e in self.model_entries if e.name == name), None)
        self.spm.set_materials(list_materials(), self.spm.material.currentText())
        self.spm.set_models(self.model_entries, current)
        self._model_changed()

    def _connect(self) -> None:
        self.image_list.imageSelected.connect(self.show_image)
        self.spm.runRequested.connect(self.run_analysis)
        self.spm.cancelRequested.connect(self.cancel_analysis)
        self.spm.autoCalibrationRequested.connect(self.auto_calibrate)
        self.spm.pixelSizeEdited.connect(self.viewer.set_pixel_size)
        self.spm.pixelSizeEdited.connect(lambda *_: self._update_fft())
        self.spm.windowChanged.connect(self.viewer.set_window_nm)
        self.spm.roiToggled.connect(self.viewer.roi.setVisible)
        self.spm.modelChanged.connect(self._model_changed)
        self.results_panel.layerChanged.connect(lambda *_: self._show_layer())
        self.results_panel.opacityChanged.connect(self.viewer.set_map_opacity)
        self.results_panel.mapToggled.connect(self.viewer.set_map_visible)
        self.results_panel.arrowsToggled.connect(lambda *_: self._show_arrows())
        self.viewer.clicked.connect(self.pick_window)
        self.viewer.cursorMoved.connect(lambda x, y, text: self.status_text.setText(text))
        self.viewer.profileChanged.connect(self._update_profile)
        self.viewer.roi.sigRegionChangeFinished.connect(lambda *_: self._update_fft())
        self.fft.use_roi.toggled.connect(lambda on: (self.viewer.roi.setVisible(
            on or self.spm.use_roi.isChecked()), self._update_fft()))
        self.profile.enabled.toggled.connect(self.viewer.line.setVisible)
        self.profile.enabled.toggled.connect(lambda *_: self._update_profile())
        self.inspector.export_button.clicked.connect(self.export_atoms_dialog)
        self.batch_panel.runRequested.connect(self.run_batch)

    def _load_models_and_prefs(self) -> None:
        from stackview.materials import list_materials
        from stackview.models.registry import list_models

        self.model_entries = list_models()
        material = prefs.get("material", "ReS2")
        self.spm.set_materials(list_materials(), material)
        self.spm.set_models(self.model_entries, prefs.get("model"))
        self.spm.stride_nm.setValue(prefs.get("stride_nm", 0.5, float))
        self.spm.fine_stride_nm.setValue(prefs.get("fine_stride_nm", 0.1, float))
        self.spm.refine.setChecked(prefs.get("refine", False, bool))
        self._model_changed()
        window_nm = prefs.get("window_nm", None, float)
        if window_nm and not self.spm.model_choice():
            self.spm.window_nm.setValue(window_nm)
        geometry, state = prefs.get("geometry"), prefs.get("window_state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None:
            self.restoreState(state)
        else:  # a new user: the panels' own size hints left the image a quarter of the width
            self._default_layout_pending = True

    #: a new user's panel sizes, as fractions of the window: the image gets the rest
    DEFAULT_LAYOUT = {"left": 0.2, "right": 0.25, "bottom": 0.25}

    def default_layout(self) -> None:
        """Size the panels so that the image takes most of the window."""
        width, height = self.width(), self.height()
        d, f = self.docks, self.DEFAULT_LAYOUT
        self.resizeDocks([d["images"], d["results"]],
                         [round(f["left"] * width), round(f["right"] * width)],
                         Qt.Orientation.Horizontal)
        self.resizeDocks([d["images"], d["results"]], [round(0.12 * height),
                                                       round(0.4 * height)],
                         Qt.Orientation.Vertical)
        self.resizeDocks([d["inspector"]], [round(f["bottom"] * height)],
                         Qt.Orientation.Vertical)

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        if self._default_layout_pending:
            self._default_layout_pending = False
            self.default_layout()

    def save_prefs(self) -> None:
        prefs.put("material", self.spm.material.currentText())
        prefs.put("model", self.spm.model_choice() or "")
        prefs.put("window_nm", self.spm.window_nm.value())
        prefs.put("stride_nm", self.spm.stride_nm.value())
        prefs.put("fine_stride_nm", self.spm.fine_stride_nm.value())
        prefs.put("refine", self.spm.refine.isChecked())
        prefs.put("geometry", self.saveGeometry())
        prefs.put("window_state", self.saveState())

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.save_prefs()
        for job in list(self.jobs):  # a QThread destroyed while running aborts the process
            job.cancel()
            job.wait(5000)
        super().closeEvent(event)

    # --- jobs --------------------------------------------------------------------------------
    def start_job(self, fn, name: str, on_result, show_progress: bool = True) -> Job:
        """Run ``fn(progress, cancel)`` in a worker; results and errors come back here."""
        job = Job(fn, name, self)
        self.jobs.add(job)
        job.succeeded.connect(on_result)
        job.failed.connect(lambda sentence, details: show_error(self, sentence, details))
        job.cancelled.connect(lambda: self.status_text.setText(f"{name} cancelled."))
        if show_progress:
            job.progressed.connect(self._progress)
            self.progress.setRange(0, 0)
            self.progress.show()
            self.status_text.setText(f"{name}…")
        job.finished.connect(lambda: self._job_finished(job))
        job.start()
        return job

    def _job_finished(self, job: Job) -> None:
        self.jobs.discard(job)
        if job is self.analysis_job:
            self.analysis_job = None
            self.spm.set_running(False)
        if not self.jobs:
            self.progress.hide()
        job.deleteLater()

    def _progress(self, done: int, total: int, message: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"%v/%m {message}")

    def busy(self) -> bool:
        return bool(self.jobs)

    # --- files -------------------------------------------------------------------------------
    def dragEnterEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 - Qt API
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    def open_paths(self, paths) -> None:
        """Add files and folders to the image list and show the first new image."""
        files = image_files(paths)
        if not files:
            show_error(self, "There is no supported image file in what was opened.",
                       "\n".join(map(str, paths)))
            return
        for k, f in enumerate(files):
            self.image_list.add(f, select=(k == 0))
        for item in paths:
            self._refresh_recent(prefs.add_recent(str(Path(item).resolve())))

    def open_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open images", "", IMAGE_FILTER)
        if files:
            self.open_paths(files)

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if folder:
            self.open_paths([folder])

    def open_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a model bundle", "",
                                              "Model cards (*.json)")
        if path:
            self.spm.add_model_path(str(Path(path).with_suffix("")))

    def _refresh_recent(self, items=None) -> None:
        self.recent_menu.clear()
        for path in items if items is not None else prefs.recent_files():
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _=False, p=path: self.open_paths([p]))
        self.recent_menu.setEnabled(not self.recent_menu.isEmpty())

    def show_image(self, path: str) -> None:
        """Show an image of the list (reading it in the background the first time)."""
        self.current_path = path
        if path in self.images:
            self._display(path)
            return
        material = self.spm.material.currentText() or None

        def opened(result, path=path):
            self.images[path] = result
            if self.current_path == path:
                self._display(path)
            for note in result.loaded.notes:
                log.info("%s: %s", Path(path).name, note)

        self.start_job(lambda progress, cancel: tasks.open_image(path, material, progress,
                                                                 cancel),
                       f"Opening {Path(path).name}", opened)

    def _display(self, path: str) -> None:
        opened = self.images[path]
        self.welcome.hide()
        cal = opened.calibration
        px = cal.pixel_size_nm if cal is not None else self.spm.pixel_size.value()
        self.viewer.set_image(opened.loaded.data, px)
        self.spm.show_calibration(cal.pixel_size_nm if cal else None, opened.message)
        if not self.spm.model_choice():
            self._model_changed()  # the automatic choice depends on the field
        self.viewer.set_window_nm(self.spm.window_nm.value())
        self.setWindowTitle(f"stackview — {Path(path).name}")
        self.status_text.setText(f"{Path(path).name}: {opened.message}")
        self.fft.set_reflections(None)  # the previous image's, until this one's are found
        self._update_fft()
        if path not in self.results:
            self._show_reflections(path, getattr(cal, "lattice_px", None))
        self._update_profile()
        if path in self.results:
            self.show_result(self.results[path])
        else:
            self.results_panel.clear_summary("No analysis of this image yet.")

    def current_image(self) -> np.ndarray | None:
        return self.viewer.data

    def _field_nm(self) -> float | None:
        """The shorter side of the image shown (nm), when it is calibrated."""
        image, px = self.current_image(), self.spm.pixel_size.value()
        if image is None or not px > 0:
            return None
        return float(min(np.shape(image)) * px)

    # --- calibration -------------------------------------------------------------------------
    def auto_calibrate(self) -> None:
        image, material = self.current_image(), self.spm.material.currentText()
        if image is None:
            show_error(self, "Open an image first.")
            return

        def done(cal, path=self.current_path):
            self.spm.show_calibration(cal.pixel_size_nm, cal.message, user=True)
            self.viewer.set_pixel_size(cal.pixel_size_nm)
            self._update_fft()
            self._show_reflections(path, getattr(cal, "lattice_px", None))

        self.start_job(lambda progress, cancel: tasks.auto_calibrate(image, material, progress,
                                                                     cancel),
                       "Reading the lattice", done)

    # --- models ------------------------------------------------------------------------------
    def _model_changed(self) -> None:
        """Show the chosen model's card and match the window size to it."""
        choice = self.spm.model_choice()
        material = self.spm.material.currentText()
        card = None
        if choice:
            entry = next((e for e in self.model_entries if str(e.path) == choice), None)
            if entry is not None:
                card = entry.card
            else:
                from stackview.errors import UsageError
                from stackview.models.card import bundle_paths, read_card

                try:
                    card = read_card(bundle_paths(choice)[1])
                except (UsageError, OSError, ValueError) as exc:
                    self.spm.model_info.setText(f"Cannot read this model's card: {exc}")
                    return
        else:
            from stackview.models.registry import preferred_model

            # the one analyze_image would use: by window, for the field of the image shown
            entry = preferred_model(material, field_nm=self._field_nm())
            card = entry.card if entry else None
        if card is None:
            self.spm.model_info.setText(f"No model for {material} yet: train one "
                                        "('stackview train') or open a bundle (File menu).")
            return
        if choice and card.material != material:
            self.spm.set_materials([self.spm.material.itemText(i)
                                    for i in range(self.spm.material.count())], card.material)
        self.spm.model_info.setText(
            f"{card.name}: {card.task}, {card.layers} layers, window {card.patch_nm:.2f} nm at "
            f"{card.sampling_A:g} Å/px, style {card.style}")
        self.spm.window_nm.setValue(card.patch_nm)
        self.viewer.set_window_nm(card.patch_nm)

    # --- analysis ----------------------------------------------------------------------------
    def run_analysis(self) -> Job | None:
        if self.current_path is None or self.current_path not in self.images:
            show_error(self, "Open an image first (drop it on the window or use File → Open).")
            return None
        if self.analysis_job is not None:
            return None
        settings = self.spm.settings(self.viewer.roi_nm())
        path = self.current_path
        self.save_prefs()

        def done(result, path=path):
            self.results[path] = result
            if self.current_path == path:
                self.show_result(result)
            s = result.summary()
            self.status_text.setText(f"{Path(path).name}: {s['n_patches']} windows in "
                                     f"{s['seconds']:.1f} s"
                                     + ("" if result.reliable else f"; {trust_text(s)}"))

        self.spm.set_running(True)
        self.analysis_job = self.start_job(
            lambda progress, cancel: tasks.run_analysis(path, settings, progress, cancel),
            f"Analysing {Path(path).name}", done)
        return self.analysis_job

    def cancel_analysis(self) -> None:
        if self.analysis_job is not None:
            self.analysis_job.cancel()
            self.status_text.setText("Cancelling…")

    def show_result(self, result) -> None:
        self.result = result
        smap = result.smap
        px = result.calibration.pixel_size_nm
        if abs(px - self.viewer.pixel_size_nm) > 1e-12:
            self.viewer.set_pixel_size(px)
            self.spm.show_calibration(px, result.calibration.message,
                                      user=result.calibration.source == "user")
        summary = result.summary()
        self.results_panel.set_layers(smap.names, result.field is not None, smap.ncc is not None)
        self.results_panel.show_summary(summary, smap.names, tasks.poor_windows(smap))
        self.viewer.set_warning("" if result.reliable else trust_text(summary))
        if smap.ncc is not None:
            self.viewer.set_ncc(smap.ncc, self.map_rect(smap), POOR_WINDOW_NCC)
        else:
            self.viewer.set_ncc(None)
        self._show_layer()
        self._show_arrows()
        self._show_pel()
        if self.current_path is not None:
            self._show_reflections(self.current_path, result_cell(result), result.image)

    def map_rect(self, smap) -> QRectF:
        """The nm rectangle the map's grid cells cover (centres ± half a step)."""
        dx = float(np.diff(smap.x_nm).mean()) if len(smap.x_nm) > 1 else smap.stride_nm
        dy = float(np.diff(smap.y_nm).mean()) if len(smap.y_nm) > 1 else smap.stride_nm
        return QRectF(smap.x_nm[0] - dx / 2, smap.y_nm[0] - dy / 2, dx * len(smap.x_nm),
                      dy * len(smap.y_nm))

    def layer_values(self, result, name: str) -> np.ndarray:
        smap = result.smap
        if name == UNCERTAINTY:
            return smap.uncertainty
        if name == DEVIATION and result.field is not None:
            return result.field.magnitude_A
        if name == NCC and smap.ncc is not None:
            return smap.ncc
        return smap.values[..., list(smap.names).index(name)]

    def _show_layer(self) -> None:
        result = self.results.get(self.current_path)
        name = self.results_panel.layer.currentText()
        if result is None or not name:
            return
        # NCC on a fixed 0–1 scale, so maps of different images compare at a glance
        levels = (0.0, 1.0) if name == NCC else None
        self.viewer.set_map(self.layer_values(result, name), self.map_rect(result.smap), name,
                            levels)
        self.viewer.set_map_opacity(self.results_panel.opacity.value() / 100)
        self.viewer.set_map_visible(self.results_panel.show_map.isChecked())

    def _show_arrows(self) -> None:
        result = self.results.get(self.current_path)
        if (result is None or result.field is None
                or not self.results_panel.arrows.isChecked()):
            self.viewer.set_arrows(None)
            return
        f, smap = result.field, result.smap
        xx, yy = np.meshgrid(smap.x_nm, smap.y_nm)
        step = min(self.map_rect(smap).width() / len(smap.x_nm),
                   self.map_rect(smap).height() / len(smap.y_nm))
        peak = np.nanmax(f.magnitude_A) if np.isfinite(f.magnitude_A).any() else 0
        scale = 0.9 * step / peak if peak > 0 else 0.0  # longest arrow: 0.9 grid steps
        dx, dy = f.dx_A * scale, f.dy_A * scale
        self.viewer.set_arrows((xx - dx / 2, yy - dy / 2, dx, dy, f.magnitude_A))

    def _show_pel(self) -> None:
        from stackview.materials import get_material

        result = self.results.get(self.current_path)
        if result is None:
            return
        smap = result.smap
        material = get_material(result.bundle.card.material)
        self.pel.set_cell(material.a_vec_A, material.b_vec_A)
        self.pel.set_landscape(None)
        if "Da_A" in smap.names and "Db_A" in smap.names:
            pts = smap.points
            k = list(smap.names).index("Da_A")
            self.pel.set_slips(pts[:, 2 + k], pts[:, 3 + k])
        else:
            self.pel.set_slips([], [])

        def found(landscape, path=self.current_path):
            self.landscapes[path] = landscape
            if landscape is not None and self.current_path == path:
                from stackview.pel.landscape import caveats

                self.pel.set_landscape(landscape.energy_meV.T, landscape_label(landscape),
                                       caveats(landscape))

        self.start_job(lambda progress, cancel: tasks.find_landscape(result), "Loading the PEL",
                       found, show_progress=False)

    # --- picked window -----------------------------------------------------------------------
    def pick_window(self, x_nm: float, y_nm: float) -> Job | None:
        result = self.results.get(self.current_path)
        if result is None:
            return None
        k = tasks.nearest_window(result.smap, x_nm, y_nm)
        cx, cy = result.smap.points[k, :2]
        self.viewer.show_picked(cx, cy, result.smap.window_nm)
        # the analysis' score of the window at once; the re-simulation beside it follows
        self.inspector.show_window_ncc(cx, cy, tasks.window_ncc(result.smap, k), POOR_WINDOW_NCC)
        self.docks["inspector"].raise_()

        def done(ins):
            self.inspection = ins
            self.inspector.show_inspection(ins)
            self.status_text.setText(self.inspector.info.text())

        return self.start_job(lambda progress, cancel: tasks.inspect_window(
            result, x_nm, y_nm, progress, cancel), "Re-simulating the window", done)

    # --- batch -------------------------------------------------------------------------------
    def run_batch(self) -> Job | None:
        paths = self.image_list.paths()
        if not paths:
            show_error(self, "Open some images or a folder first.")
            return None
        if self.analysis_job is not None:
            return None
        settings = self.spm.settings()

        def done(batch):
            self.batch = batch
            self.results.update(batch.results)
            self.batch_panel.show_rows(batch.rows, batch.failures)
            self.status_text.setText(f"Batch statistics: {self.batch_panel.info.text()}")
            if self.current_path in batch.results:
                self.show_result(batch.results[self.current_path])

        self.spm.set_running(True)
        self.docks["batch"].raise_()
        self.analysis_job = self.start_job(
            lambda progress, cancel: tasks.run_batch(paths, settings, progress, cancel),
            f"Analysing {len(paths)} images", done)
        return self.analysis_job

    # --- export ------------------------------------------------------------------------------
    def export_results(self, out_dir, figure_format: str = "png") -> Job | None:
        """Write the current image's results as ``stackview analyze`` does (OUT/<stem>/...)."""
        from stackview.analysis.analyze import write_results

        result = self.results.get(self.current_path)
        if result is None:
            show_error(self, "Run an analysis before exporting its results.")
            return None

        landscape = self.landscapes.get(self.current_path)

        def write(progress, cancel):
            folder = write_results(result, out_dir, figure_format=figure_format)
            if landscape is not None:  # as 'stackview analyze --pel'
                from stackview.pel.figure import add_pel_to_figure

                add_pel_to_figure(result, folder, landscape, figure_format=figure_format)
            return folder

        def written(folder):
            self.status_text.setText(f"Results written to {folder}")

        return self.start_job(write, "Exporting", written)

    def export_batch(self, out_dir) -> Job | None:
        if self.batch is None or not self.batch.results:
            show_error(self, "Run the batch analysis before exporting it.")
            return None
        batch = self.batch
        return self.start_job(lambda progress, cancel: tasks.write_batch(batch, out_dir),
                              "Exporting the batch",
                              lambda out: self.status_text.setText(f"Batch written to {out}"))

    def export_atoms(self, path) -> Job | None:
        from stackview.analysis.resimulate import export_atoms

        ins = getattr(self, "inspection", None)
        if ins is None:
            show_error(self, "Click a point of the map first to pick a window.")
            return None
        return self.start_job(lambda progress, cancel: export_atoms(ins.atoms, path),
                              "Exporting the atomic model",
                              lambda p: self.status_text.setText(f"Atomic model written to {p}"))

    def export_dialog(self, figure_format: str) -> None:
        if self.results.get(self.current_path) is None:
            show_error(self, "Run an analysis before exporting its results.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export results into")
        if folder:
            self.export_results(folder, figure_format)

    def export_batch_dialog(self) -> None:
        if self.batch is None:
            show_error(self, "Run the batch analysis before exporting it.")
            return
        folder = QFileDialog.getExistingDirectory(self, "Export the batch into")
        if folder:
            self.export_batch(folder)

    def export_atoms_dialog(self) -> None:
        if getattr(self, "inspection", None) is None:
            show_error(self, "Click a point of the map first to pick a window.")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Export the atomic model", "window.xyz",
                                              "xyz (*.xyz);;CIF (*.cif);;POSCAR (*.vasp)")
        if path:
            self.export_atoms(path)

    # --- small views -------------------------------------------------------------------------
    def _update_fft(self) -> None:
        if self.viewer.data is None:
            return
        image = self.viewer.roi_pixels() if self.fft.use_roi.isChecked() else self.viewer.data
        self.fft.show_fft(image, self.viewer.pixel_size_nm)

    def _show_reflections(self, path: str | None, cell_px, image=None) -> None:
        """Circle, in the FFT panel, the reflections ``cell_px`` (the calibration's cell; None:
        the FFT's own lattice) indexes in the image at ``path`` (found in the background)."""
        if image is None:
            image = self.images[path].loaded.data if path in self.images else self.viewer.data
        if path is None or image is None:
            return
        cell = None if cell_px is None else np.asarray(cell_px, dtype=float).reshape(2, 2)
        key = (path, None if cell is None else cell.round(6).tobytes())
        if key in self.reflections:
            if self.current_path == path:
                self.fft.set_reflections(self.reflections[key])
            return

        def found(reflections, key=key, path=path):
            self.reflections[key] = reflections
            if self.current_path == path:
                self.fft.set_reflections(reflections)

        from stackview.gui.reflections import calibration_reflections

        self.start_job(lambda progress, cancel: calibration_reflections(image, cell),
                       "Finding the lattice reflections", found, show_progress=False)

    def _update_profile(self) -> None:
        if self.profile.enabled.isChecked():
            self.profile.show_profile(self.viewer.line_profile())
