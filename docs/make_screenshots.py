"""Screenshots of the real desktop window for the user guide (docs/gui.md, issue 6 item 10).

Starts the application, opens the bundled sample, runs a real analysis with the bundled ReS2
model (the model's window, stride 0.25 nm), clicks a map point, shows the PEL panel and the
batch statistics of ``stackview/resources/samples/``, and saves a PNG of the window after each
step into ``docs/img/gui/``. Every wait goes through the Qt event loop (a local ``QEventLoop``
polled by a timer); the GUI thread never sleeps while a job runs.

Run from the repository root (Xvfb gives a fixed, reproducible screen)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py

(``QT_QPA_PLATFORM=offscreen python docs/make_screenshots.py`` gives the same grabs without a
display: every shot is ``QWidget.grab()`` of the window.)

Options: ``--out DIR`` (default docs/img/gui), ``--stride NM`` (default 0.25),
``--skip-batch`` (the batch step re-analyses the sample folder), ``--max-kb`` (default 400),
``--first-run`` (only the first-run shots, in seconds: the welcome panel over the empty window,
``00_welcome.png``, and Help → About, ``08_about.png``).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "stackview" / "resources" / "samples" / "ReS2_bilayer_tedgen_sample4.png"
SAMPLES = ROOT / "stackview" / "resources" / "samples"
MODEL = "ReS2_slip_bilayer"
WINDOW_SIZE = (1500, 950)
JOB_TIMEOUT_S = 3 * 3600


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "gui"))
    parser.add_argument("--stride", type=float, default=0.25)
    parser.add_argument("--skip-batch", action="store_true")
    parser.add_argument("--max-kb", type=int, default=400)
    parser.add_argument("--first-run", action="store_true",
                        help="only the welcome panel and About dialog shots")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    from stackview.engine.qt_compat import binding_problem

    if binding_problem():
        print(f"make_screenshots: {binding_problem()}", file=sys.stderr)
        return 2

    from PySide6.QtCore import QEventLoop, QPoint, QSettings, Qt, QTimer
    from PySide6.QtTest import QTest

    # fresh preferences: no restored geometry, recent files or last model from this user
    prefs_dir = tempfile.mkdtemp(prefix="stackview-shots-")
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, prefs_dir)

    from stackview.gui.app import create_app
    from stackview.gui.main_window import MainWindow

    app = create_app()
    w = MainWindow()
    w.resize(*WINDOW_SIZE)
    w.move(0, 0)
    w.show()

    def pump(ms: int) -> None:
        """Run the event loop for ``ms`` (repaints, deferred layouts) without blocking it."""
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def wait_until(predicate, what: str, timeout_s: float = JOB_TIMEOUT_S) -> None:
        """Spin the event loop until ``predicate()``; fail on an error box or a timeout."""
        start = time.monotonic()
        last_report = [start]
        loop = QEventLoop()
        timer = QTimer()
        outcome = {}

        def check():
            if w.last_error is not None:
                outcome["error"] = w.last_error.text()
            elif predicate():
                outcome["ok"] = True
            elif time.monotonic() - start > timeout_s:
                outcome["error"] = f"timed out after {timeout_s:.0f} s"
            else:
                if time.monotonic() - last_report[0] > 30:
                    last_report[0] = time.monotonic()
                    log(f"  … {what}: {w.progress.text() or w.status_text.text()}")
                return
            loop.quit()

        timer.timeout.connect(check)
        timer.start(100)
        loop.exec()
        timer.stop()
        if "error" in outcome:
            raise RuntimeError(f"{what}: {outcome['error']}")
        log(f"{what}: done in {time.monotonic() - start:.1f} s")

    def shot(name: str, caption: str, widget=None) -> Path:
        pump(400)  # let deferred repaints (pyqtgraph, dock layouts) land
        pixmap = (widget or w).grab()
        buffer = pixmap.toImage()
        path = out / f"{name}.png"
        save_small(buffer, path, args.max_kb)
        log(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
            f"({path.stat().st_size // 1024} kB) — {caption}")
        return path

    def dock_layout(bottom_height: int | None = None, right_width: int | None = None) -> None:
        """The new user's layout (``MainWindow.default_layout``), with a taller bottom panel
        or a wider right one where a shot shows them."""
        d = w.docks
        w.default_layout()
        if right_width is not None:
            w.resizeDocks([d["results"]], [right_width], Qt.Orientation.Horizontal)
        if bottom_height is not None:
            w.resizeDocks([d["inspector"]], [bottom_height], Qt.Orientation.Vertical)
        pump(200)

    # (1) the empty window
    w.docks["fft"].raise_()
    w.docks["inspector"].raise_()
    dock_layout()
    shot("00_welcome", "first run: the welcome panel over the empty window")
    about = w.show_about()
    shot("08_about", "Help → About stackview: version, licences, bundled data", about)
    about.close()
    if args.first_run:
        w.close()
        app.processEvents()
        return 0
    shot("01_start", "the window right after start")

    # (2) the sample opened: calibrated image, window square, FFT
    log(f"opening {SAMPLE.relative_to(ROOT)}")
    w.open_paths([str(SAMPLE)])
    wait_until(lambda: str(SAMPLE) in w.images and w.viewer.data is not None and not w.busy(),
               "opening the sample")
    model_index = w.spm.model.findText(MODEL, Qt.MatchFlag.MatchContains)
    if model_index >= 0:
        w.spm.model.setCurrentIndex(model_index)
    w.spm.stride_nm.setValue(args.stride)
    pump(100)
    log(f"model {w.spm.model.currentText()!r}, window {w.spm.window_nm.value():g} nm, "
        f"stride {w.spm.stride_nm.value():g} nm, views {w.spm.views.value()}, "
        f"pixel {w.viewer.pixel_size_nm:.5g} nm")
    # the window zooms the FFT onto the lattice itself (the full Nyquist range is ±132 1/nm
    # for this oversampled image) and circles the reflections the calibration used
    log(f"FFT: {w.fft.info.text()}; zoom ±{w.fft.lattice_zoom_nm() or 0:.1f} 1/nm")
    shot("02_image_fft", "the sample open: calibrated image, window square, FFT")

    # (3) a real analysis with the bundled model, then the Da map over the image
    log("running the analysis")
    job = w.run_analysis()
    if job is None:
        raise RuntimeError("the window did not start the analysis")
    wait_until(lambda: str(SAMPLE) in w.results and not w.busy(), "analysis", JOB_TIMEOUT_S)
    result = w.results[str(SAMPLE)]
    log(f"{result.smap.n_patches} windows; {w.results_panel.stats.text().splitlines()[0]}")
    w.docks["results"].raise_()
    w.results_panel.layer.setCurrentText("Da_A")
    shot("03_map_da", "the Da map over the image, with its colour bar and the summary")

    # (4) slip-vector arrows over the |Δd| map
    if w.results_panel.arrows.isEnabled():
        from stackview.gui.results_panel import DEVIATION

        w.results_panel.layer.setCurrentText(DEVIATION)
        w.results_panel.arrows.setChecked(True)
        # zoom onto the mapped area (as with the mouse wheel) so the arrows are readable
        rect = w.viewer.map_rect
        w.viewer.plot.getViewBox().setRange(rect=rect, padding=0.08)
        shot("04_slip_arrows", "slip-vector arrows over the |Δd| map")
        w.viewer.fit_image()
        w.results_panel.arrows.setChecked(False)
        w.results_panel.layer.setCurrentText("Da_A")
    else:
        log("no slip-vector field for this result: no arrows screenshot")

    # (5) click a map point (a real mouse click on the image) -> the window inspector
    dock_layout(bottom_height=300)
    smap = result.smap
    k = len(smap.points) // 2 + len(smap.x_nm) // 2
    x_nm, y_nm = (float(v) for v in smap.points[k, :2])
    view = w.viewer.plot.getViewBox()
    scene_pos = view.mapViewToScene(pg_point(x_nm, y_nm))
    gview = w.viewer.glw
    widget_pos = gview.mapFromScene(scene_pos)
    log(f"clicking the map at ({x_nm:.2f}, {y_nm:.2f}) nm = widget {widget_pos.x()}, "
        f"{widget_pos.y()}")
    QTest.mouseClick(gview.viewport(), Qt.MouseButton.LeftButton,
                     Qt.KeyboardModifier.NoModifier, QPoint(widget_pos.x(), widget_pos.y()))
    pump(200)
    if not w.busy() and getattr(w, "inspection", None) is None:
        log("the synthetic click did not reach the viewer; picking the point directly")
        w.pick_window(x_nm, y_nm)
    wait_until(lambda: getattr(w, "inspection", None) is not None and not w.busy(),
               "re-simulating the picked window")
    shot("05_window_inspector",
         "a picked window: atomic model, re-simulation, line profiles and NCC")

    # (6) the PEL panel: every window's slip over the shipped ReS2 landscape
    w.docks["pel"].raise_()
    dock_layout(bottom_height=300, right_width=640)
    w.resizeDocks([w.docks["results"]], [170], Qt.Orientation.Vertical)
    wait_until(lambda: w.pel.has_landscape or not w.busy(), "loading the PEL")
    pump(200)
    w.pel.widget.autoRange()  # fit the cell to the panel's new size
    shot("06_pel", "every window's (Da, Db) on the ReS2 cell over the energy landscape")

    # (7) batch statistics of the sample folder
    if not args.skip_batch:
        dock_layout(bottom_height=250)
        w.open_paths([str(SAMPLES)])
        wait_until(lambda: not w.busy(), "opening the sample folder")
        log("running the batch")
        w.run_batch()
        wait_until(lambda: w.batch is not None and not w.busy(), "batch statistics",
                   JOB_TIMEOUT_S)
        w.docks["batch"].raise_()
        w.docks["fft"].raise_()
        shot("07_batch", "batch statistics of stackview/resources/samples/ (the CLI's stats.csv)")

    w.close()
    app.processEvents()
    return 0


def pg_point(x: float, y: float):
    from PySide6.QtCore import QPointF

    return QPointF(x, y)


def save_small(qimage, path: Path, max_kb: int) -> None:
    """Save a QImage as an optimised PNG under ``max_kb`` (full-colour if it fits, else an
    adaptive 256-colour palette, else downscaled)."""
    from PIL import Image
    from PySide6.QtCore import QBuffer, QIODevice

    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    qimage.save(buf, "PNG")
    image = Image.open(io.BytesIO(bytes(buf.data()))).convert("RGB")
    candidates = [image]
    candidates.append(image.quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                     dither=Image.Dither.NONE))
    for scale in (0.85, 0.7):
        small = image.resize((round(image.width * scale), round(image.height * scale)),
                             Image.Resampling.LANCZOS)
        candidates.append(small.quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                         dither=Image.Dither.NONE))
    for candidate in candidates:
        data = io.BytesIO()
        candidate.save(data, "PNG", optimize=True)
        if data.tell() <= max_kb * 1024 or candidate is candidates[-1]:
            path.write_bytes(data.getvalue())
            return


if __name__ == "__main__":
    sys.exit(main())
