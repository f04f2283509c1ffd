"""stackview: interlayer slip and twist of 2D van der Waals stacks from ADF-STEM images.

The package is a plain scientific library (numpy, ASE); Qt lives only in ``stackview.gui`` and
``stackview.engine.qt*``. Importing ``stackview`` must stay cheap: heavy dependencies (torch,
abTEM) are imported inside the functions that need them.
"""

__version__ = "0.1.0"
