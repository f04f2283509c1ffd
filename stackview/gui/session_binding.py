"""The window's widgets as views of its :class:`~stackview.session.model.Session`.

What the user does in a widget becomes a session edit (undoable: the calibration, the ROI, the
settings, the model choice); what changes in the session — an edit, an undo, an opened session
— is shown by the widgets. Nothing here keeps state of its own: the window's analysis reads
the session (:meth:`~stackview.session.model.Session.analysis_settings`), never a spin box.
"""

from __future__ import annotations

from dataclasses import replace

from stackview.session.model import ImageCalibration, Settings


class SessionBinding:
    """Connects a :class:`~stackview.gui.main_window.MainWindow`'s panels to its session."""

    def __init__(self, window) -> None:
        self.window = window
        self.session = window.session
        spm, viewer = window.spm, window.viewer
        # widgets -> session
        spm.settingsEdited.connect(self.settings_edited)
        spm.modelChanged.connect(self.model_edited)
        spm.pixelSizeEdited.connect(self.pixel_size_edited)
        viewer.roi.sigRegionChangeFinished.connect(lambda *_: self.roi_edited())
        # session -> widgets
        self.session.events.settings.connect(lambda *_: self.show_settings())
        self.session.events.calibrations.connect(lambda *_: self.show_calibration())
        self.session.events.rois.connect(lambda *_: self.show_roi())

    # --- widgets -> session --------------------------------------------------------------
    def settings_edited(self) -> None:
        values = self.window.spm.widget_settings()
        values.pop("model"), values.pop("material")  # model_edited decides those
        changes = {"settings": replace(self.session.settings, **values)}
        path = self.session.current
        if values["use_roi"] and path is not None and self.session.roi(path) is None:
            changes["rois"] = {**self.session.rois, path: self.roi_of_viewer()}
        self.session.edit(**changes)
        self.show_settings()  # a refused value (none yet) shows what the session holds

    def model_edited(self) -> None:
        """The user chose a model or a material: one edit of the model, the material it is
        for and the window it reads."""
        values = self.window.spm.widget_settings()
        self.session.set_settings(**self.model_settings(values["model"], values["material"]))
        self.show_settings()  # e.g. a material the chosen model does not read is put back

    def model_settings(self, model: str | None, material: str | None) -> dict:
        """Settings that go with a model choice: its material and window (the card's)."""
        values = {"model": model, "material": material}
        card = self.window.model_card(model, material)
        if card is not None:
            if model and card.material != material:
                values["material"] = card.material
            values["window_nm"] = float(card.patch_nm)
        return values

    def pixel_size_edited(self, value: float) -> None:
        path = self.session.current
        if path is not None:
            self.session.set_pixel_size(path, value)

    def roi_edited(self) -> None:
        if self.window.viewer.data is not None and self.session.current is not None:
            self.session.set_roi(self.roi_of_viewer())

    def roi_of_viewer(self) -> tuple:
        return tuple(round(float(v), 9) for v in self.window.viewer.roi_nm())

    # --- session -> widgets --------------------------------------------------------------
    def show_settings(self) -> None:
        w, s = self.window, self.session.settings
        w.spm.show_settings(s)
        w.viewer.set_window_nm(s.window_nm)
        w.viewer.roi.setVisible(s.use_roi or w.fft.use_roi.isChecked())
        w.show_model_info()

    def show_calibration(self) -> None:
        w, path = self.window, self.session.current
        cal = self.session.calibration(path)
        if path is None or cal is None:
            return
        w.spm.show_calibration(cal.pixel_size_nm, cal.message, user=cal.user)
        px = self.session.display_pixel_size_nm(path)
        if w.viewer.data is not None and abs(px - w.viewer.pixel_size_nm) > 1e-12:
            w.viewer.set_pixel_size(px)  # the ROI is reset with the scale
            self.show_roi()
            w.update_fft()

    def show_roi(self) -> None:
        """The current image's ROI (each image has its own; one without keeps the rectangle
        the viewer put on it)."""
        roi = self.session.roi_nm
        if roi is None or self.window.viewer.data is None:
            return
        if self.roi_of_viewer() != tuple(roi):
            self.window.viewer.set_roi_nm(roi)
            self.window.update_fft()

    # --- program changes (not undoable) ----------------------------------------------------
    def assign_settings(self, settings: Settings) -> None:
        """Settings the program chose (preferences, a default model's window)."""
        self.session.settings = settings
        self.show_settings()

    def note_calibration(self, path: str, calibration: ImageCalibration) -> None:
        self.session.set_calibration(path, calibration, undoable=False)
