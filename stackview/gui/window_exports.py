"""The main window's exports: results as ``stackview analyze`` writes them, the batch, the
picked window's atomic model (each a job; the dialogs only ask where)."""

from __future__ import annotations

from PySide6.QtWidgets import QFileDialog

from stackview.gui import tasks
from stackview.gui.errors import show_error


class WindowExports:
    """Mixed into :class:`~stackview.gui.main_window.MainWindow`."""

    def export_results(self, out_dir, figure_format: str = "png"):
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

    def export_batch(self, out_dir):
        if self.batch is None or not self.batch.results:
            show_error(self, "Run the batch analysis before exporting it.")
            return None
        batch = self.batch
        return self.start_job(lambda progress, cancel: tasks.write_batch(batch, out_dir),
                              "Exporting the batch",
                              lambda out: self.status_text.setText(f"Batch written to {out}"))

    def export_atoms(self, path):
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
