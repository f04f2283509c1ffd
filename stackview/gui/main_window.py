"""The main window: viewer in the centre, panels in docks, every job on the background engine.

What the user works on is the window's :class:`~stackview.session.model.Session` (images,
calibrations, settings, ROI, results, the inspected window); the panels are views bound to it
(:mod:`.session_binding`), and it saves, opens and undoes (:mod:`.session_files`). The window
starts jobs around the functions of :mod:`stackview.gui.tasks` on the one worker mechanism
(:mod:`.window_jobs`) and shows what they return. A failed job becomes a message box (one
sentence, details on demand); the window never blocks on a job. Menus are built in
:mod:`.window_menus`, exports live in :mod:`.window_exports`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import Qt
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
from stackview.gui.results_panel import ResultsPanel, trust_text
from stackview.gui.session_binding import SessionBinding
from stackview.gui.session_files import WindowSession
from stackview.gui.spm_panel import SpmPanel
from stackview.gui.stacking_view import window_stacking
from stackview.gui.viewer import ImageViewer
from stackview.gui.welcome import WelcomePanel
from stackview.gui.window_exports import WindowExports
from stackview.gui.window_jobs import WindowJobs
from stackview.gui.window_menus import build_menus
from stackview.gui.window_results import WindowResults, landscape_label, result_cell  # noqa: F401
from stackview.io.readers import SUFFIXES
from stackview.session.model import ImageCalibration, ImageRef, Session, Settings

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


class MainWindow(WindowJobs, WindowResults, WindowExports, WindowSession, QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("stackview")
        self.setAcceptDrops(True)
        self.resize(1400, 900)
        self.last_error = None
        self.session = Session()
        self.jobs: set[Job] = set()
        self.analysis_job: Job | None = None
        # the pixels of the images read so far (the session holds their references)
        self.images: dict[str, tasks.OpenedImage] = {}
        self.landscapes: dict[str, object] = {}  # path -> PEL shown under the slips, or None
        self.batch: tasks.BatchResult | None = None
        self.inspection = None
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

        build_menus(self)
        self._refresh_recent()
        self.binding = SessionBinding(self)
        self._connect()
        self._load_models_and_prefs()
        self.session.history.changed.connect(self._history_changed)
        self._history_changed()

    # --- the session's state, as the window's attributes ---------------------------------------
    @property
    def results(self) -> dict:
        """Path → analysis result (the session's)."""
        return self.session.results

    @property
    def current_path(self) -> str | None:
        return self.session.current

    @current_path.setter
    def current_path(self, path: str | None) -> None:
        self.session.current = path

    # --- set-up ------------------------------------------------------------------------------
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
        self.binding.model_edited()

    def _connect(self) -> None:
        self.image_list.imageSelected.connect(self.show_image)
        self.spm.runRequested.connect(self.run_analysis)
        self.spm.cancelRequested.connect(self.cancel_analysis)
        self.spm.autoCalibrationRequested.connect(self.auto_calibrate)
        self.results_panel.layerChanged.connect(lambda *_: self._show_layer())
        self.results_panel.opacityChanged.connect(self.viewer.set_map_opacity)
        self.results_panel.mapToggled.connect(self.viewer.set_map_visible)
        self.results_panel.arrowsToggled.connect(lambda *_: self._show_arrows())
        self.viewer.clicked.connect(self.pick_window)
        self.viewer.cursorMoved.connect(lambda x, y, text: self.status_text.setText(text))
        self.viewer.profileChanged.connect(self._update_profile)
        self.viewer.roi.sigRegionChangeFinished.connect(lambda *_: self.update_fft())
        self.fft.use_roi.toggled.connect(lambda on: (self.viewer.roi.setVisible(
            on or self.session.settings.use_roi), self.update_fft()))
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
        chosen = self.spm.widget_settings()
        settings = Settings(material=chosen["material"], model=chosen["model"],
                            stride_nm=prefs.get("stride_nm", 0.5, float),
                            fine_stride_nm=prefs.get("fine_stride_nm", 0.1, float),
                            refine=prefs.get("refine", False, bool))
        settings = replace(settings, **self.binding.model_settings(settings.model,
                                                                    settings.material))
        window_nm = prefs.get("window_nm", None, float)
        if window_nm and not settings.model:
            settings = replace(settings, window_nm=window_nm)
        self.binding.assign_settings(settings)  # the preferences are no edit to undo
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
        s = self.session.settings
        prefs.put("material", s.material or "")
        prefs.put("model", s.model or "")
        prefs.put("window_nm", s.window_nm)
        prefs.put("stride_nm", s.stride_nm)
        prefs.put("fine_stride_nm", s.fine_stride_nm)
        prefs.put("refine", s.refine)
        prefs.put("geometry", self.saveGeometry())
        prefs.put("window_state", self.saveState())

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.save_prefs()
        self.stop_jobs()  # no job outlives the window it reports to
        super().closeEvent(event)

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
        self.session.add_images(files)
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
        material = self.session.settings.material

        def opened(result, path=path):
            self.images[path] = result
            self.session.set_image_ref(ImageRef(path, result.sha256, result.size))
            if self.session.calibration(path) is None:  # a reopened session's comes first
                self.binding.note_calibration(path, ImageCalibration.from_library(
                    result.calibration, message=result.message))
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
        cal = self.session.calibration(path) or ImageCalibration(None)
        self.viewer.set_image(opened.loaded.data, self.session.display_pixel_size_nm(path))
        self.spm.show_calibration(cal.pixel_size_nm, cal.message, user=cal.user)
        roi = self.session.roi(path)  # each image has its own ROI
        if roi is not None:
            self.viewer.set_roi_nm(roi)
        elif self.session.settings.use_roi:  # the one the viewer put on it is analysed
            self.session.set_roi(self.binding.roi_of_viewer(), path, undoable=False)
        if not self.session.settings.model:  # the automatic choice depends on the field
            s = self.session.settings
            self.binding.assign_settings(replace(s, **self.binding.model_settings(
                None, s.material)))
        self.viewer.set_window_nm(self.session.settings.window_nm)
        self.setWindowTitle(f"stackview — {Path(path).name}")
        self.status_text.setText(f"{Path(path).name}: {cal.message}")
        self.fft.set_reflections(None)  # the previous image's, until this one's are found
        self.update_fft()
        if path not in self.results:
            self._show_reflections(path, cal.lattice_px)
        self._update_profile()
        if path in self.results:
            self.show_result(self.results[path])
        else:
            self.results_panel.clear_summary("No analysis of this image yet.")

    def current_image(self) -> np.ndarray | None:
        return self.viewer.data

    def _field_nm(self) -> float | None:
        """The shorter side of the image shown (nm), when it is calibrated."""
        image, px = self.current_image(), self.session.pixel_size_nm()
        if image is None or not px:
            return None
        return float(min(np.shape(image)) * px)

    # --- calibration -------------------------------------------------------------------------
    def auto_calibrate(self) -> None:
        image, material = self.current_image(), self.session.settings.material
        if image is None:
            show_error(self, "Open an image first.")
            return

        def done(cal, path=self.current_path):
            # the user asked for it: an undoable edit, passed to the analysis as the user's
            self.session.set_calibration(path, ImageCalibration.from_library(cal, user=True))
            self._show_reflections(path, getattr(cal, "lattice_px", None))

        self.start_job(lambda progress, cancel: tasks.auto_calibrate(image, material, progress,
                                                                     cancel),
                       "Reading the lattice", done)

    # --- models ------------------------------------------------------------------------------
    def model_card(self, choice: str | None, material: str | None):
        """The card of the chosen model (None: the material's default for the image's
        field); None when there is none or it cannot be read."""
        if choice:
            entry = next((e for e in self.model_entries if str(e.path) == choice), None)
            if entry is not None:
                return entry.card
            from stackview.errors import UsageError
            from stackview.models.card import bundle_paths, read_card

            try:
                return read_card(bundle_paths(choice)[1])
            except (UsageError, OSError, ValueError):
                return None
        from stackview.models.registry import preferred_model

        # the one analyze_image would use: by window, for the field of the image shown
        entry = preferred_model(material, field_nm=self._field_nm())
        return entry.card if entry else None

    def show_model_info(self) -> None:
        """Describe the session's model choice under the model list."""
        s = self.session.settings
        card = self.model_card(s.model, s.material)
        if card is None and s.model:
            self.spm.model_info.setText(f"Cannot read the card of the model {s.model}.")
        elif card is None:
            self.spm.model_info.setText(f"No model for {s.material} yet: train one "
                                        "('stackview train') or open a bundle (File menu).")
        else:
            self.spm.model_info.setText(
                f"{card.name}: {card.task}, {card.layers} layers, window {card.patch_nm:.2f} "
                f"nm at {card.sampling_A:g} Å/px, style {card.style}")

    # --- analysis ----------------------------------------------------------------------------
    def run_analysis(self) -> Job | None:
        if self.current_path is None or self.current_path not in self.images:
            show_error(self, "Open an image first (drop it on the window or use File → Open).")
            return None
        if self.analysis_job is not None:
            return None
        settings = self.session.analysis_settings(self.current_path)
        path = self.current_path
        self.save_prefs()

        def done(result, path=path):
            self.session.set_result(path, result)
            if self.current_path == path:
                self.show_result(result)
            s = result.summary()
            self.status_text.setText(f"{Path(path).name}: {s['n_patches']} windows in "
                                     f"{s['seconds']:.1f} s"
                                     + ("" if result.reliable else f"; {trust_text(s)}"))

        def analyse(progress, cancel):
            # the analyse workflow (what 'stackview analyze' runs), with the cached model
            from stackview.workflows.analyze import AnalyzeJob, analyze_one

            job = AnalyzeJob.from_settings(settings, [path])
            bundle = tasks.load_model(settings.model, settings.material, settings.window_nm)
            return analyze_one(job, path, bundle=bundle, progress=progress, cancel=cancel)

        self.spm.set_running(True)
        self.analysis_job = self.start_job(analyse, f"Analysing {Path(path).name}", done)
        return self.analysis_job

    def cancel_analysis(self) -> None:
        if self.analysis_job is not None:
            self.analysis_job.cancel()
            self.status_text.setText("Cancelling…")

    # --- picked window -----------------------------------------------------------------------
    def pick_window(self, x_nm: float, y_nm: float) -> Job | None:
        result = self.results.get(self.current_path)
        if result is None:
            return None
        k = tasks.nearest_window(result.smap, x_nm, y_nm)
        cx, cy = result.smap.points[k, :2]
        self.session.inspected = (float(x_nm), float(y_nm))
        self.viewer.show_picked(cx, cy, result.smap.window_nm)
        # the analysis' score of the window at once; the re-simulation beside it follows
        self.inspector.show_window_ncc(cx, cy, tasks.window_ncc(result.smap, k), POOR_WINDOW_NCC,
                                       window_stacking(result.smap, k))
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
        settings = self.session.analysis_settings(with_roi=False)

        def done(batch):
            self.batch = batch
            self.session.update_results(batch.results)
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
