"""The model-training wizard: a new material (WS2 from a CIF) to a registered model with tiny
settings, resume after closing, and input validation (pytest-qt, offscreen)."""

import json
import shlex
import time

import numpy as np
import pytest
from style_images import experimental, one_torch_thread  # noqa: F401 (autouse)

from stackview.gui.wizard.project import STEPS, Project
from stackview.gui.wizard.wizard import TrainingWizard

JOB_MS = 90_000


@pytest.fixture
def ws2_cif(tmp_path):
    from ase.build import mx2

    path = tmp_path / "WS2_test.cif"
    mx2("WS2", kind="2H", a=3.18, thickness=3.19, vacuum=8.0).write(path)
    return path


@pytest.fixture
def exp_images(tmp_path):
    paths = []
    for s in range(2):
        p = tmp_path / f"exp{s}.npy"
        np.save(p, experimental(80, seed=s).astype(np.float32))
        paths.append(p)
    return paths


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path):
    from PySide6.QtCore import QSettings

    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "qsettings"))


def _id(step):
    return STEPS.index(step)


def fill_first_pages(wiz, cif, images):
    m = wiz.page_of("material")
    m.structure.setText(str(cif))
    m.new_name.setText("WS2u")
    m.layers.setValue(2)
    m.task.setCurrentText("slip")
    wiz.next()
    assert wiz.currentId() == _id("imaging"), m.last_error
    im = wiz.page_of("imaging")
    im.preset.setCurrentText("custom")
    im.kv.setValue(200.0)  # no preset has 200 kV: a custom optics preset
    im.convergence.setValue(25.0)
    im.adf_inner.setValue(45.0)
    im.adf_outer.setValue(180.0)
    im.sampling.setValue(0.02)
    wiz.next()
    assert wiz.currentId() == _id("images"), im.last_error
    pg = wiz.page_of("images")
    pg.add_files([str(p) for p in images])
    for r in range(pg.table.rowCount()):
        pg.table.item(r, 1).setText("0.02")
    wiz.next()
    assert wiz.currentId() == _id("selection"), pg.last_error


def run_step(qtbot, page):
    page.run_button.click()
    # the click started the step's job (every page's start() runs one or fails at once), and
    # the page holds Next back while it runs
    assert page.running(), page.last_error
    assert not page.isComplete() and not page.run_button.isEnabled()
    qtbot.waitUntil(lambda: not page.running(), timeout=JOB_MS)
    assert page.last_error == ""
    assert page.isComplete(), page.status.text()


def test_wizard_end_to_end(qtbot, tmp_path, ws2_cif, exp_images):
    from stackview.gui.main_window import MainWindow
    from stackview.models import list_models, read_card

    start = time.perf_counter()
    window = MainWindow()
    qtbot.addWidget(window)
    tools = [a for a in window.menuBar().actions() if a.text() == "&Tools"]
    assert tools and window.wizard_action.text().startswith("Train a model")
    wiz = window.open_training_wizard(tmp_path / "proj")
    registered = []
    wiz.modelRegistered.connect(registered.append)
    fill_first_pages(wiz, ws2_cif, exp_images)
    project = Project.open(tmp_path / "proj")
    assert project["material"]["name"] == "WS2u"
    assert project["imaging"]["energy_kV"] == 200.0
    assert project["imaging"]["sampling_A"] == pytest.approx(0.2)
    assert [i["sampling_nm"] for i in project["images"]] == [0.02, 0.02]

    sel = wiz.page_of("selection")
    sel.candidates.setValue(8)
    sel.candidate_px.setValue(32)
    sel.keep.setValue(4)
    assert "stackview style select" in sel.command.toPlainText()
    run_step(qtbot, sel)
    chosen = sel.project["selection"]["chosen"]
    assert 1 <= len(chosen) <= 4
    # adjustable: clicking a point toggles it
    sel.toggle(sel.data["simulations"].index(chosen[0]))
    assert chosen[0] not in sel.project["selection"]["chosen"]
    sel.toggle(sel.data["simulations"].index(chosen[0]))
    assert chosen[0] in sel.project["selection"]["chosen"]
    wiz.next()
    assert wiz.currentId() == _id("style"), sel.last_error

    st = wiz.page_of("style")
    st.config.setCurrentText("tiny")
    st.iterations.setValue(4)
    st.image_px.setValue(32)
    assert "--config tiny --iterations 4" in st.command.toPlainText()
    run_step(qtbot, st)
    assert st.project["style"]["bundle"].endswith("style.safetensors")
    assert st.preview.pixmap() is not None and not st.preview.pixmap().isNull()
    wiz.next()
    assert wiz.currentId() == _id("dataset"), st.last_error

    ds = wiz.page_of("dataset")
    ds.count.setValue(16)
    ds.patch_px.setValue(32)
    ds.test_count.setValue(8)
    assert "About 24 patches" in ds.estimate.text()
    assert "--style drit" in ds.command.toPlainText()
    # 200 kV matches no preset: the command names the conditions themselves
    assert "--optics kv=200,convergence=25,adf=45-180" in ds.command.toPlainText()
    run_step(qtbot, ds)
    wiz.next()
    assert wiz.currentId() == _id("regressor"), ds.last_error

    rg = wiz.page_of("regressor")
    rg.name.setText("WS2-wizard-test")
    rg.backbone.setCurrentText("tiny")
    rg.steps.setValue(6)
    rg.batch.setValue(4)
    run_step(qtbot, rg)
    assert len(rg.points) >= 1 and all(np.isfinite(v) for _, v in rg.points)
    wiz.next()
    assert wiz.currentId() == _id("evaluation"), rg.last_error

    ev = wiz.page_of("evaluation")
    assert "stackview evaluate" in ev.command.toPlainText()
    run_step(qtbot, ev)
    metrics = ev.project["evaluation"]["metrics"]
    assert metrics["n"] == 8 and metrics["mean_A"] > 0
    assert len(ev.errors) == 8
    assert np.mean(ev.errors) == pytest.approx(metrics["mean_A"])
    assert ev.table.rowCount() >= 5
    wiz.next()
    assert wiz.currentId() == _id("finish"), ev.last_error

    fin = wiz.page_of("finish")
    assert not fin.isComplete()
    fin.register_button.click()
    assert fin.last_error == ""
    assert registered and registered[0].endswith("WS2-wizard-test")
    entries = {e.name: e for e in list_models()}
    assert "WS2-wizard-test" in entries
    # selectable in the main window at once: listed and selected
    assert window.spm.model_choice() == str(entries["WS2-wizard-test"].path)
    assert "WS2u" in [window.spm.material.itemText(i) for i in range(window.spm.material.count())]
    card = read_card(registered[0])
    assert card.material == "WS2u" and card.task == "slip"
    assert card.style.startswith("drit:")
    assert "wizard-test" in card.accuracy
    saved = json.loads((tmp_path / "proj" / "project.json").read_text())
    assert saved["done"] == list(STEPS)
    # every command line shown is one the CLI accepts
    from stackview.cli import build_parser

    parser = build_parser()
    shown = [sel.command, st.command, ds.command, rg.command, ev.command]
    lines = [ln for w in shown for ln in w.toPlainText().splitlines() if ln.startswith("stack")]
    assert len(lines) == 7
    for line in lines:
        args = parser.parse_args(shlex.split(line)[1:])
        assert callable(args.func)
    elapsed = time.perf_counter() - start
    print(f"wizard end to end: {elapsed:.1f} s")
    assert elapsed < 120


def test_resume_after_closing(qtbot, tmp_path, ws2_cif, exp_images):
    wiz = TrainingWizard(tmp_path / "proj")
    qtbot.addWidget(wiz)
    fill_first_pages(wiz, ws2_cif, exp_images)
    sel = wiz.page_of("selection")
    sel.candidates.setValue(8)
    sel.candidate_px.setValue(32)
    run_step(qtbot, sel)
    wiz.next()
    st = wiz.page_of("style")
    st.config.setCurrentText("tiny")
    st.iterations.setValue(200)
    st.image_px.setValue(32)
    st.run_button.click()
    qtbot.waitUntil(lambda: st.project.path("style", "history.json").exists()
                    or st.progress.value() >= 2, timeout=JOB_MS)
    wiz.close()  # mid-way: the job is cancelled and checkpointed
    wiz.done(0)
    assert not st.running()
    assert (tmp_path / "proj" / "style" / "checkpoint.json").exists()

    again = TrainingWizard(tmp_path / "proj")
    qtbot.addWidget(again)
    assert again.currentId() == _id("style")
    assert again.page_of("material").project["material"]["name"] == "WS2u"
    st2 = again.page_of("style")
    assert st2.config.currentText() == "tiny" and st2.iterations.value() == 200
    st2.iterations.setValue(12)
    st2.resume_button.click()
    qtbot.waitUntil(lambda: not st2.running(), timeout=JOB_MS)
    assert st2.last_error == ""
    history = json.loads((tmp_path / "proj" / "style" / "history.json").read_text())
    assert history[-1]["iteration"] == 12
    # Train (not Resume) starts afresh but keeps the previous run beside it
    st2.iterations.setValue(2)
    st2.run_button.click()
    qtbot.waitUntil(lambda: not st2.running(), timeout=JOB_MS)
    assert st2.last_error == "" and st2.isComplete()
    assert (tmp_path / "proj" / "style.previous-1" / "checkpoint.json").exists()
    history = json.loads((tmp_path / "proj" / "style" / "history.json").read_text())
    assert history[-1]["iteration"] == 2
    st2.skip.setChecked(True)
    again.next()
    assert again.currentId() == _id("dataset")
    assert "--style physics" in again.page_of("dataset").command.toPlainText()
    # changing an earlier page un-finishes the steps that depended on it
    for _ in range(4):
        again.back()
    assert again.currentId() == _id("imaging")
    assert again.project.is_done("selection") and again.project.is_done("style")
    again.page_of("imaging").kv.setValue(300.0)
    again.next()
    assert again.currentId() == _id("images")
    assert again.project.is_done("imaging") and not again.project.is_done("selection")
    assert not again.project.is_done("style")
    assert Project.open(tmp_path / "proj").resume_step() == "images"


def test_invalid_inputs_are_rejected(qtbot, tmp_path, exp_images):
    wiz = TrainingWizard(tmp_path / "proj")
    qtbot.addWidget(wiz)
    m = wiz.page_of("material")
    m.material.setCurrentText("MoS2")
    m.task.setCurrentText("twist")
    m.layers.setValue(3)
    wiz.next()
    assert wiz.currentId() == _id("material")
    assert "Layers to 2" in m.last_error
    m.layers.setValue(2)
    m.structure.setText(str(tmp_path / "missing.cif"))
    m.new_name.setText("Foo")
    wiz.next()
    assert wiz.currentId() == _id("material") and "does not exist" in m.last_error
    m.structure.setText("")
    wiz.next()
    assert wiz.currentId() == _id("imaging")

    im = wiz.page_of("imaging")
    im.adf_inner.setValue(200)
    im.adf_outer.setValue(100)
    wiz.next()
    assert wiz.currentId() == _id("imaging") and "outer angle" in im.last_error
    im.adf_outer.setValue(250)
    im.sampling.setValue(0.3)
    wiz.next()
    assert wiz.currentId() == _id("imaging") and "cannot resolve" in im.last_error
    im.sampling.setValue(0.02)
    wiz.next()
    assert wiz.currentId() == _id("images")

    pg = wiz.page_of("images")
    wiz.next()
    assert "at least one" in pg.last_error
    pg.add_files([str(exp_images[0])])
    wiz.next()
    assert "pixel size of exp0.npy" in pg.last_error
    pg.table.item(0, 1).setText("0.002")
    wiz.next()
    assert "larger image" in pg.last_error
    pg.table.item(0, 1).setText("0.02")
    wiz.next()
    assert wiz.currentId() == _id("selection")
    sel = wiz.page_of("selection")
    assert not sel.isComplete()
    assert not sel.validatePage() and "selection" in sel.last_error


def test_lattice_calibration_of_uncalibrated_images(qtbot, tmp_path, shared_dir):
    from ase.build import mx2

    cif = tmp_path / "MoSe2.cif"
    mx2("MoSe2", kind="2H", a=3.288, thickness=3.34, vacuum=8.0).write(cif)
    wiz = TrainingWizard(tmp_path / "proj")
    qtbot.addWidget(wiz)
    m = wiz.page_of("material")
    m.structure.setText(str(cif))
    m.new_name.setText("MoSe2u")
    wiz.next()
    assert "a = 3.288 Å" in m.info.text()
    wiz.page_of("imaging").sampling.setValue(0.016)
    wiz.next()
    pg = wiz.page_of("images")
    pg.add_files([str(shared_dir / "data" / "experimental" / "MoSe2_monolayer_motiflearn.tif")])
    assert pg.table.item(0, 1).text() == ""  # no calibration in the file
    pg.auto_calibrate()
    assert float(pg.table.item(0, 1).text()) == pytest.approx(0.0157, abs=0.0005)
    wiz.next()
    assert wiz.currentId() == _id("selection")


@pytest.mark.parametrize("material,task,layers", [("MoS2", "twist", 2), ("ReS2", "slip", 3)])
def test_runner_headless_twist_and_trilayer(tmp_path, material, task, layers):
    """The wizard's jobs without Qt (a script can drive a project): physics style, twist and
    trilayer models, the accuracy table in the model's units."""
    from stackview.engine.jobs import CancelToken, null_progress
    from stackview.gui.wizard import runner
    from stackview.models import read_card

    p = Project.open(tmp_path / "proj")
    p.update("material", name=material, task=task, layers=layers)
    p.update("imaging", sampling_A=0.2)
    p.update("style", skip=True)
    p.update("dataset", count=8, patch_px=32, test_count=4)
    p.update("regressor", backbone="tiny", steps=3, batch_size=4)
    p.update("finish", name=f"{material}-{task}-{layers}")
    spec = runner.dataset_spec(p)
    assert spec.style == "physics" and spec.optics in ("MoS2-60kV", "ReS2-300kV")

    def go(job):
        fn, command = job
        assert command.startswith("stackview ")
        return fn(progress=null_progress, cancel=CancelToken())

    go(runner.dataset_job(p))
    result = go(runner.regressor_job(p))
    assert read_card(result["bundle"]).spec["head"] == "invariant"
    ev = go(runner.evaluation_job(p))
    rows = dict(runner.accuracy_rows(ev["metrics"]))
    assert rows["test patches"] == "4"
    if task == "twist":
        assert rows["Δθ mean"].endswith("°")
        assert np.mean(ev["errors"]) == pytest.approx(ev["metrics"]["mean_deg"])
    else:
        assert rows["ΔD mean"].endswith("Å") and len(ev["metrics"]["per_axis"]) == 4


def test_runner_starts_a_related_material_from_a_bundled_model(tmp_path):
    """Transfer: a ReSe2 slip model starts from the bundled ReS2 one (same network)."""
    from stackview.engine.jobs import CancelToken, null_progress
    from stackview.gui.wizard import runner
    from stackview.models import read_card

    p = Project.open(tmp_path / "proj")
    p.update("material", name="ReSe2", task="slip", layers=2)
    p.update("imaging", sampling_A=0.2)
    p.update("style", skip=True)
    p.update("dataset", count=4, patch_px=32, test_count=2)
    p.update("regressor", backbone="resnet18", steps=1, batch_size=4, lr=3e-4)
    p.update("finish", name="ReSe2-from-ReS2")
    choices = runner.start_models(p)
    assert "ReS2_slip_bilayer" in choices and "MoS2_twist_bilayer" not in choices
    assert "ReS2_slip_bilayer" not in runner.start_models(p, backbone="tiny")
    p.update("regressor", init_from="ReS2_slip_bilayer")
    fn, command = runner.dataset_job(p)
    fn(progress=null_progress, cancel=CancelToken())
    fn, command = runner.regressor_job(p)
    assert "--init-from ReS2_slip_bilayer" in command
    result = fn(progress=null_progress, cancel=CancelToken())
    card = read_card(result["bundle"])
    assert card.material == "ReSe2" and card.training["init_from"]["bundle"] == "ReS2_slip_bilayer"


def test_window_size_is_chosen_with_the_patch_size(tmp_path):
    """The wizard's patch size is the model's window: it says how large, and for twist which
    angles such a window reads before the analysis gives a bound."""
    from stackview.gui.wizard import runner

    p = Project.open(tmp_path / "proj")
    p.update("material", name="MoS2", task="twist", layers=2)
    p.update("imaging", sampling_A=0.25)
    p.update("dataset", patch_px=100)
    small = runner.window_text(p)
    assert "2.50 nm" in small and "from 3.0° to 57.0°" in small
    p.update("dataset", patch_px=256)
    large = runner.window_text(p)
    assert "6.40 nm" in large and "from 1.2° to 58.8°" in large
    assert runner.dataset_spec(p).patch_px == 256
