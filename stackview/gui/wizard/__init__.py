"""Guided model-training wizard (Tools → Train a model for a new material…).

:mod:`.project` holds the state (a folder with ``project.json``, no Qt), :mod:`.runner` the
heavy steps as the CLI's jobs with their equivalent command lines (no Qt), :mod:`.pages` the
wizard pages (one module each) and :mod:`.wizard` the ``QWizard`` itself.
"""

from stackview.gui.wizard.project import STEPS, Project

__all__ = ["STEPS", "Project", "TrainingWizard", "open_training_wizard"]


def __getattr__(name):
    if name in ("TrainingWizard", "open_training_wizard"):
        from stackview.gui.wizard import wizard

        return getattr(wizard, name)
    raise AttributeError(name)
