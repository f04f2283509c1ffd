"""Screenshots of every wizard page for docs/wizard.md (a new material, MoSe2, from a CIF).

Builds a MoSe2 monolayer CIF with ASE, uses the MoSe2 ADF-STEM images in
``../shared/data/experimental`` as the microscope style (calibrated from their FFT lattice),
runs every step with small CPU settings (tiny DRIT networks, few iterations, the ``tiny``
regressor backbone: a smoke-scale demonstration, not a useful model) and saves a PNG of the
wizard after each page into ``docs/img/wizard/``. Waits go through the Qt event loop.

    QT_QPA_PLATFORM=offscreen python -m stackview.gui.wizard.screenshots [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SHARED = ROOT.parent / "shared" / "data" / "experimental"
IMAGES = ("MoSe2_monolayer_motiflearn.tif", "MoSe2_monolayer_40kV_motiflearn.npy")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img" / "wizard"))
    parser.add_argument("--project", help="project folder (default: a temporary one)")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    tmp = Path(tempfile.mkdtemp(prefix="wizard-shots-"))
    os.environ.setdefault("STACKVIEW_DATA_DIR", str(tmp / "userdata"))

    from ase.build import mx2
    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from stackview.gui.wizard.project import STEPS
    from stackview.gui.wizard.wizard import TrainingWizard

    app = QApplication.instance() or QApplication(sys.argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cif = tmp / "MoSe2_monolayer.cif"
    mx2("MoSe2", kind="2H", a=3.288, thickness=3.34, vacuum=8.0).write(cif)

    def wait(cond, timeout_s=3600):
        end = time.monotonic() + timeout_s
        loop = QEventLoop()
        timer = QTimer()
        timer.timeout.connect(lambda: (cond() or time.monotonic() > end) and loop.quit())
        timer.start(100)
        loop.exec()
        timer.stop()
        if not cond():
            raise TimeoutError("step did not finish")

    wiz = TrainingWizard(args.project or tmp / "project")
    wiz.resize(1000, 820)
    wiz.show()

    def shot(step):
        app.processEvents()
        path = out / f"{STEPS.index(step) + 1:02d}_{step}.png"
        wiz.grab().save(str(path))
        print(f"wrote {path}", flush=True)

    def run(page):
        page.run_button.click()
        wait(lambda: not page.running())
        if page.last_error:
            raise RuntimeError(f"{page.title()}: {page.last_error}")

    m = wiz.page_of("material")
    m.structure.setText(str(cif))
    m.new_name.setText("MoSe2")
    m.layers.setValue(2)
    m.task.setCurrentText("slip")
    wiz.next()
    m.initializePage()  # show the imported material's cell and domain
    wiz.back()
    shot("material")
    wiz.next()
    im = wiz.page_of("imaging")
    im.preset.setCurrentText("MoS2-60kV")
    im.sampling.setValue(0.016)
    shot("imaging")
    wiz.next()
    pg = wiz.page_of("images")
    pg.add_files([str(SHARED / n) for n in IMAGES])
    pg.auto_calibrate()
    shot("images")
    wiz.next()
    sel = wiz.page_of("selection")
    sel.candidates.setValue(40)
    sel.candidate_px.setValue(128)
    sel.keep.setValue(12)
    run(sel)
    shot("selection")
    wiz.next()
    st = wiz.page_of("style")
    st.config.setCurrentText("tiny")
    st.iterations.setValue(60)
    st.image_px.setValue(64)
    run(st)
    shot("style")
    wiz.next()
    ds = wiz.page_of("dataset")
    ds.count.setValue(400)
    ds.patch_px.setValue(64)
    ds.test_count.setValue(100)
    ds.vacancies.setValue(0.05)
    run(ds)
    shot("dataset")
    wiz.next()
    rg = wiz.page_of("regressor")
    rg.backbone.setCurrentText("tiny")
    rg.steps.setValue(300)
    rg.batch.setValue(16)
    rg.lr.setValue(0.003)
    run(rg)
    shot("regressor")
    wiz.next()
    ev = wiz.page_of("evaluation")
    run(ev)
    shot("evaluation")
    wiz.next()
    wiz.page_of("finish").register_button.click()
    shot("finish")
    print(f"project: {wiz.project.folder}")
    wiz.done(0)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
