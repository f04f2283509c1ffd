"""The one worker mechanism (stackview.engine.qt): structured progress, results in the GUI
thread, and explicit lifetimes instead of a disabled garbage collector (pytest-qt, offscreen)."""

import gc
import threading

import pytest

pytest.importorskip("pytestqt")
pytestmark = pytest.mark.gui

from stackview.engine.qt_compat import binding_problem  # noqa: E402

if binding_problem():  # the process would abort, taking the rest of the suite with it
    pytest.skip(binding_problem(), allow_module_level=True)

import shiboken6  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402

from stackview.engine.jobs import Progress  # noqa: E402
from stackview.engine.qt import start_job, stop_jobs  # noqa: E402
from stackview.errors import Cancelled  # noqa: E402

TIMEOUT_MS = 10_000


@pytest.fixture
def owner(qtbot):
    widget = QWidget()
    qtbot.addWidget(widget)
    yield widget
    if shiboken6.isValid(widget):
        stop_jobs(widget)


def test_results_and_progress_events_arrive_in_the_gui_thread(qtbot, owner):
    main = threading.get_ident()
    seen = {"events": [], "threads": set()}

    def job(progress, cancel):
        progress(1, 3, "loss 0.5")  # an old-style call
        progress(Progress(2, 3, "fitting", stage="fit", metrics={"chi2": 1.5}))
        return threading.get_ident()

    def on_progress(event):
        seen["threads"].add(threading.get_ident())
        seen["events"].append(event)

    result = []
    start_job(owner, job, "probe", result.append, on_progress=on_progress)
    qtbot.waitUntil(lambda: bool(result) and not owner.jobs, timeout=TIMEOUT_MS)
    assert result[0] != main  # ran in a worker
    assert seen["threads"] == {main}
    assert seen["events"] == [Progress(1, 3, "loss 0.5", metrics={"loss": 0.5}),
                              Progress(2, 3, "fitting", "fit", {"chi2": 1.5})]


def test_errors_and_cancel_are_reported_once(qtbot, owner):
    errors, cancelled, finished = [], [], []

    def fails(progress, cancel):
        raise ValueError("the window is too small for this model")

    start_job(owner, fails, "probe", on_error=lambda s, d: errors.append((s, d)),
              on_finished=finished.append)
    started = threading.Event()

    def waits(progress, cancel):
        started.set()
        while True:
            cancel.check()
            threading.Event().wait(0.01)

    job = start_job(owner, waits, "long", on_cancel=lambda: cancelled.append(1),
                    on_finished=finished.append)
    assert started.wait(5)
    stop_jobs(owner)  # cancels and joins
    assert job.done()
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=TIMEOUT_MS)
    assert errors[0][0] == "The window is too small for this model."
    assert "Traceback" in errors[0][1]
    assert cancelled == [1] and not owner.jobs
    with pytest.raises(Cancelled):
        job.token.check()


def test_a_jobs_qobject_is_deleted_in_the_gui_thread(qtbot, owner):
    """Explicit lifetime: the job's signals are owned by Qt and deleted by the GUI thread's
    event loop after their last signal, never when the pool thread drops its references."""
    result = []
    job = start_job(owner, lambda progress, cancel: 42, "probe", result.append)
    signals = job.signals
    assert signals.thread() is owner.thread()
    del job
    qtbot.waitUntil(lambda: not shiboken6.isValid(signals), timeout=TIMEOUT_MS)
    assert result == [42]


def test_a_deleted_owner_is_never_called_back(qtbot):
    owner = QWidget()
    release, calls = threading.Event(), []

    def job(progress, cancel):
        release.wait(5)
        progress(1, 1, "late")
        return "late"

    running = start_job(owner, job, "orphan", calls.append, on_progress=calls.append,
                        on_finished=calls.append)
    signals = running.signals
    owner.deleteLater()
    qtbot.waitUntil(lambda: not shiboken6.isValid(owner), timeout=TIMEOUT_MS)
    release.set()
    assert running.wait(5000)
    qtbot.waitUntil(lambda: not shiboken6.isValid(signals), timeout=TIMEOUT_MS)  # reaped
    assert calls == []


def test_collection_in_a_worker_meets_no_live_window(qtbot, tmp_path):
    """The collector stays on (nothing switches it off any more) and may run in a job's
    thread: a closed wizard was deleted by Qt in the GUI thread, so collecting its wrappers
    there destroys no window (this once deadlocked when it did)."""
    from stackview.gui.wizard.wizard import TrainingWizard

    assert gc.isenabled()
    wizard = TrainingWizard(tmp_path / "proj")
    wizard.show()
    wizard.close()
    qtbot.waitUntil(lambda: not shiboken6.isValid(wizard), timeout=TIMEOUT_MS)
    cycle = [wizard, list(wizard.pages.values())]
    cycle.append(cycle)  # only the collector can free these wrappers
    del wizard, cycle
    owner = QWidget()
    qtbot.addWidget(owner)
    result = []
    start_job(owner, lambda progress, cancel: gc.collect() >= 0, "collect", result.append)
    qtbot.waitUntil(lambda: bool(result), timeout=TIMEOUT_MS)
    assert result == [True] and gc.isenabled()
