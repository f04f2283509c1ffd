"""The wizard's pages, one per module (Qt widgets only; every computation is a job of
:mod:`stackview.gui.wizard.runner`); :mod:`.base` holds what they share."""

from stackview.gui.wizard.pages.base import StepPage
from stackview.gui.wizard.pages.dataset import DatasetPage
from stackview.gui.wizard.pages.evaluation import EvaluationPage
from stackview.gui.wizard.pages.finish import FinishPage
from stackview.gui.wizard.pages.images import ImagesPage, ImageTable
from stackview.gui.wizard.pages.imaging import ImagingPage
from stackview.gui.wizard.pages.material import MaterialPage
from stackview.gui.wizard.pages.regressor import RegressorPage
from stackview.gui.wizard.pages.selection import SelectionPage
from stackview.gui.wizard.pages.style import StylePage

__all__ = ["DatasetPage", "EvaluationPage", "FinishPage", "ImageTable", "ImagesPage",
           "ImagingPage", "MaterialPage", "RegressorPage", "SelectionPage", "StepPage",
           "StylePage"]
