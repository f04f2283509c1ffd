"""The main window's views of a result: the map layers, arrows, the PEL under the slips, the
FFT with the calibration's reflections and the line profile."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from PySide6.QtCore import QRectF

from stackview.analysis.trust import POOR_WINDOW_NCC
from stackview.gui import stacking_view as sv
from stackview.gui import tasks
from stackview.gui.results_panel import DEVIATION, NCC, UNCERTAINTY, trust_text
from stackview.gui.stacking_view import FAMILY_WORDS, STACKING
from stackview.session.model import ImageCalibration


def landscape_label(landscape, with_family: bool = False) -> str:
    """'MoS2, meV/cell, chgnet+d3' — what the PEL panel's title says about a landscape
    ('; magnitudes qualitative' where the library has caveats, e.g. an overbinding potential).
    ``with_family`` (a family model's map): the landscape's family named after the material,
    'MoS2 antiparallel (2H) family, meV/cell, chgnet+d3'."""
    from stackview.pel.landscape import caveats

    calc = landscape.provenance.get("calculator") or {}
    name = calc.get("name") if isinstance(calc, dict) else str(calc)
    text = landscape.material.name
    if with_family:
        text += " " + FAMILY_WORDS.get(landscape.family, f"{landscape.family} family")
    text += ", meV/cell" + (f", {name}" if name else "")
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



class WindowResults:
    """Mixed into :class:`~stackview.gui.main_window.MainWindow`."""

    def show_result(self, result) -> None:
        self.result = result
        smap = result.smap
        path = self.current_path if self.current_path is not None else str(result.path)
        old = self.session.calibration(path)
        distortion = () if result.lattice is None else tuple(
            (str(k), v) for k, v in result.lattice.distortion.to_dict().items()
            if isinstance(v, (int, float)))
        px = float(result.calibration.pixel_size_nm)
        if old is None or old.pixel_size_nm is None or abs(px - old.pixel_size_nm) > 1e-12:
            # what the analysis measured (no user edit; the views follow the session)
            self.binding.note_calibration(path, ImageCalibration.from_library(
                result.calibration, user=result.calibration.source == "user",
                distortion=distortion))
        elif old.distortion != distortion:
            self.binding.note_calibration(path, replace(old, distortion=distortion))
        if abs(px - self.viewer.pixel_size_nm) > 1e-12:
            self.viewer.set_pixel_size(px)
        summary = result.summary()
        self.results_panel.set_layers(smap.names, result.field is not None, smap.ncc is not None,
                                      sv.has_stacking(smap))
        self.results_panel.show_summary(summary, smap.names, tasks.poor_windows(smap))
        self.viewer.set_warning("" if result.reliable else trust_text(summary))
        if smap.ncc is not None:
            self.viewer.set_ncc(smap.ncc, self.map_rect(smap), POOR_WINDOW_NCC)
        else:
            self.viewer.set_ncc(None)
        self._show_layer()
        self.viewer.set_window_words(
            sv.grid_words(smap, result.bundle.card.material) if sv.has_stacking(smap) else None,
            self.map_rect(smap))
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
        if name == STACKING and sv.has_stacking(result.smap):
            st = result.smap.stacking
            self.viewer.set_classes(st.grid, sv.class_rgba(st.grid), self.map_rect(result.smap),
                                    name, sv.legend_html(sv.class_counts(st.grid, st.classes)))
        else:
            # NCC and the family probability on a fixed 0–1 scale, so maps of different
            # images compare at a glance
            levels = (0.0, 1.0) if name in (NCC, "family") else None
            self.viewer.set_map(self.layer_values(result, name), self.map_rect(result.smap),
                                name, levels)
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
        """The slips on the cell over the landscape; for a family model's map, the landscape
        of the map's majority family with that family's windows, its classes marked."""
        from stackview.core.stacking import chamber_frac
        from stackview.materials import get_material

        result = self.results.get(self.current_path)
        if result is None:
            return
        material = get_material(result.bundle.card.material)
        family = sv.pel_family(result)
        domain = None if family is None else chamber_frac(material, family)
        self.pel.set_cell(material.a_vec_A, material.b_vec_A, domain)
        self.pel.set_marks([] if family is None else sv.class_marks(material, family))
        da, db, shown, read = sv.pel_slips(result, family)
        notes = [] if family is None else sv.pel_notes(family, shown, read)
        self.pel.set_landscape(None, notes=notes)
        self.pel.set_slips(da, db)

        def found(landscape, path=self.current_path):
            self.landscapes[path] = landscape
            if landscape is not None and self.current_path == path:
                from stackview.pel.landscape import caveats

                self.pel.set_landscape(landscape.energy_meV.T,
                                       landscape_label(landscape, family is not None),
                                       [*caveats(landscape), *notes])

        self.start_job(lambda progress, cancel: tasks.find_landscape(result), "Loading the PEL",
                       found, show_progress=False)

    # --- small views -------------------------------------------------------------------------
    def update_fft(self) -> None:
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
